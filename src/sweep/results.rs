//! The results table of a sweep: one row per finished run, in `results.jsonl` and `results.csv`.
//!
//! A row is the point's id and index, every swept key's value, the seed, and the run's final
//! figures ([`Row`]). Each run folder holds its own row as `row.json`, written last (atomically):
//! it marks the run as finished. The two tables are rebuilt from those files, atomically, when
//! a sweep starts and when it ends, and appended to (one whole line per write, fsynced) as runs
//! finish in between; so a sweep killed at any point leaves no half row that survives a restart.

use crate::error::{Error, Result};
use crate::io;
use crate::summary::Summary;
use serde_json::{Map, Value};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// The JSON-lines table.
pub const RESULTS_JSONL: &str = "results.jsonl";
/// The CSV table.
pub const RESULTS_CSV: &str = "results.csv";
/// A finished run's row, inside its folder.
pub const ROW_FILE: &str = "row.json";

/// The columns after the swept keys and the seed.
pub const METRIC_COLUMNS: [&str; 10] = [
    "train_loss",
    "test_loss",
    "train_accuracy",
    "test_accuracy",
    "vanishing_ratio",
    "vanishing_ratio_final",
    "steps",
    "diverged",
    "diverged_at_step",
    "wall_time_s",
];

/// One finished run.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The point's id.
    pub id: String,
    /// The point's index in the grid.
    pub index: usize,
    /// The swept keys' values (JSON), in column order.
    pub values: Vec<(String, Value)>,
    /// The seed.
    pub seed: u64,
    /// The metric columns, in [`METRIC_COLUMNS`] order (JSON null when not finite or absent).
    pub metrics: Vec<Value>,
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Null, number)
}

impl Row {
    /// The row of a finished run.
    pub fn new(id: &str, index: usize, values: &[(String, toml::Value)], seed: u64, s: &Summary) -> Self {
        let values = values
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).expect("TOML values are JSON values")))
            .collect();
        let metrics = vec![
            number(s.train_loss),
            opt(s.test_loss),
            opt(s.train_accuracy),
            opt(s.test_accuracy),
            number(s.vanishing_ratio),
            number(s.vanishing_ratio_final),
            Value::from(s.steps),
            Value::Bool(s.diverged),
            s.diverged_at_step.map_or(Value::Null, Value::from),
            number(s.wall_time_s),
        ];
        Self { id: id.to_string(), index, values, seed, metrics }
    }

    /// The value of column `name` (a swept key, `seed`, a metric, `id` or `index`).
    pub fn get(&self, name: &str) -> Option<Value> {
        match name {
            "id" => Some(Value::from(self.id.clone())),
            "index" => Some(Value::from(self.index)),
            "seed" => Some(Value::from(self.seed)),
            _ => self
                .values
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| METRIC_COLUMNS.iter().position(|m| *m == name).map(|i| self.metrics[i].clone())),
        }
    }

    /// A metric as a number (None when null or not a number; booleans count 0/1).
    pub fn metric(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(f64::from(u8::from(b))),
            _ => None,
        }
    }

    /// The column names of a table with these swept keys.
    pub fn columns(keys: &[&str]) -> Vec<String> {
        let mut c: Vec<String> = vec!["id".into(), "index".into()];
        c.extend(keys.iter().map(|k| k.to_string()));
        c.push("seed".into());
        c.extend(METRIC_COLUMNS.iter().map(|m| m.to_string()));
        c
    }

    /// The row as a JSON object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::from(self.id.clone()));
        m.insert("index".into(), Value::from(self.index));
        for (k, v) in &self.values {
            m.insert(k.clone(), v.clone());
        }
        m.insert("seed".into(), Value::from(self.seed));
        for (k, v) in METRIC_COLUMNS.iter().zip(&self.metrics) {
            m.insert(k.to_string(), v.clone());
        }
        Value::Object(m)
    }

    /// One line of `results.jsonl`, newline included.
    pub fn jsonl_line(&self) -> String {
        let mut s = serde_json::to_string(&self.to_json()).expect("rows serialise");
        s.push('\n');
        s
    }

    /// Reads a row back from its JSON object, with the sweep's swept keys.
    pub fn from_json(v: &Value, keys: &[&str]) -> std::result::Result<Self, String> {
        let m = v.as_object().ok_or("not a JSON object")?;
        let field = |k: &str| m.get(k).ok_or_else(|| format!("no '{k}' field"));
        let id = field("id")?.as_str().ok_or("'id' is not a string")?.to_string();
        let index = field("index")?.as_u64().ok_or("'index' is not a whole number")? as usize;
        let seed = field("seed")?.as_u64().ok_or("'seed' is not a whole number")?;
        let values = keys.iter().map(|k| Ok((k.to_string(), field(k)?.clone()))).collect::<Result<_, String>>()?;
        let metrics = METRIC_COLUMNS.iter().map(|k| field(k).cloned()).collect::<Result<_, String>>()?;
        Ok(Self { id, index, values, seed, metrics })
    }

    /// One CSV record of the row, newline included.
    pub fn csv_record(&self) -> Vec<u8> {
        let text = |v: &Value| match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut fields: Vec<String> = vec![self.id.clone(), self.index.to_string()];
        fields.extend(self.values.iter().map(|(_, v)| text(v)));
        fields.push(self.seed.to_string());
        fields.extend(self.metrics.iter().map(text));
        csv_line(&fields)
    }
}

fn csv_line(fields: &[String]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).expect("writing CSV into memory");
    w.into_inner().expect("writing CSV into memory")
}

/// The whole CSV table (header and rows).
pub fn csv_table(keys: &[&str], rows: &[Row]) -> Vec<u8> {
    let mut out = csv_line(&Row::columns(keys));
    for r in rows {
        out.extend(r.csv_record());
    }
    out
}

/// The whole JSON-lines table.
pub fn jsonl_table(rows: &[Row]) -> String {
    rows.iter().map(Row::jsonl_line).collect()
}

/// Writes both tables into `dir`, atomically each.
pub fn write_tables(dir: &Path, keys: &[&str], rows: &[Row]) -> Result<()> {
    io::write_atomic(&dir.join(RESULTS_JSONL), jsonl_table(rows).as_bytes())?;
    io::write_atomic(&dir.join(RESULTS_CSV), &csv_table(keys, rows))
}

/// Appends `bytes` to `path` in one write, then fsyncs.
fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |err| Error::Io { action: "cannot append to", path: path.into(), err };
    let mut f = OpenOptions::new().append(true).open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Appends one row to both tables of `dir`.
pub fn append_row(dir: &Path, row: &Row) -> Result<()> {
    append(&dir.join(RESULTS_JSONL), row.jsonl_line().as_bytes())?;
    append(&dir.join(RESULTS_CSV), &row.csv_record())
}

/// Reads `results.jsonl`: the rows, and the number of lines that were not whole rows (a torn last
/// line of a killed writer).
pub fn read_jsonl(path: &Path, keys: &[&str]) -> Result<(Vec<Row>, usize)> {
    let text =
        std::fs::read_to_string(path).map_err(|err| Error::Io { action: "cannot read", path: path.into(), err })?;
    let (mut rows, mut bad) = (Vec::new(), 0);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(line).map_err(|e| e.to_string());
        match parsed.and_then(|v| Row::from_json(&v, keys)) {
            Ok(r) => rows.push(r),
            // a last line without its newline was being appended when the writer died
            Err(_) if n + 1 == text.lines().count() && !text.ends_with('\n') => bad += 1,
            Err(e) => {
                return Err(Error::Data { path: path.into(), msg: format!("line {}: {e}", n + 1) });
            }
        }
    }
    Ok((rows, bad))
}

/// Writes a run's row into its folder (atomically): the run is finished from then on.
pub fn write_row_file(run_dir: &Path, row: &Row) -> Result<()> {
    io::write_json(&run_dir.join(ROW_FILE), &row.to_json())
}

/// Reads a run folder's row, None when the run did not finish.
pub fn read_row_file(run_dir: &Path, keys: &[&str]) -> Result<Option<Row>> {
    let path = run_dir.join(ROW_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::Io { action: "cannot read", path, err }),
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::Data { path: path.clone(), msg: e.to_string() })?;
    Row::from_json(&v, keys).map(Some).map_err(|msg| Error::Data { path, msg })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize) -> Row {
        Row {
            id: format!("{i:04}"),
            index: i,
            values: vec![("depth".into(), Value::from(3)), ("lr".into(), Value::from(0.1))],
            seed: 1,
            metrics: vec![
                Value::from(0.5),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::from(1e-7),
                Value::from(2.0),
                Value::from(10),
                Value::Bool(false),
                Value::Null,
                Value::from(0.25),
            ],
        }
    }

    #[test]
    fn rows_round_trip_and_csv_has_every_column() {
        let r = row(7);
        let back = Row::from_json(&serde_json::from_str(&r.jsonl_line()).unwrap(), &["depth", "lr"]).unwrap();
        assert_eq!(back, r);
        let table = String::from_utf8(csv_table(&["depth", "lr"], std::slice::from_ref(&r))).unwrap();
        let mut lines = table.lines();
        assert_eq!(
            lines.next().unwrap(),
            "id,index,depth,lr,seed,train_loss,test_loss,train_accuracy,test_accuracy,vanishing_ratio,\
             vanishing_ratio_final,steps,diverged,diverged_at_step,wall_time_s"
        );
        assert_eq!(lines.next().unwrap(), "0007,7,3,0.1,1,0.5,,,,1e-7,2.0,10,false,,0.25");
        assert_eq!(r.metric("diverged"), Some(0.0));
        assert_eq!(r.metric("depth"), Some(3.0));
        assert_eq!(r.metric("test_loss"), None);
    }

    #[test]
    fn a_torn_last_line_is_counted_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULTS_JSONL);
        let mut text = jsonl_table(&[row(0), row(1)]);
        text.push_str(&row(2).jsonl_line()[..20]);
        std::fs::write(&path, text).unwrap();
        let (rows, torn) = read_jsonl(&path, &["depth", "lr"]).unwrap();
        assert_eq!((rows.len(), torn), (2, 1));
        // a bad line in the middle is an error naming it
        std::fs::write(&path, format!("{{}}\n{}", row(1).jsonl_line())).unwrap();
        let e = read_jsonl(&path, &["depth", "lr"]).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
