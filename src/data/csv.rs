//! CSV files with a header row: one column is the target, every other column an input feature.
//!
//! The target is read as a real value (regression), or, for `cross_entropy`, as a class label:
//! integers as they are (`0..n_classes`, n_classes = largest label + 1), or names ("setosa"),
//! numbered in sorted order (the names are kept in [`Dataset::classes`]). `--features` or
//! `--drop` choose the feature columns; dropped columns may hold anything. A seeded shuffle chooses the
//! `test_fraction` of rows held out; both splits keep the file's row order, so with
//! `test_fraction = 0` the training split is the file as it is.
//! Features are used as they are unless `standardize` is on (see [`crate::data::standardize`]),
//! so results compare directly with a PyTorch model fed the same file.

use crate::data::{Dataset, Labels, LoadOptions, Split};
use crate::error::{Error, Result};
use ndarray::Array2;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Loads `file`, predicting the column named `target`, every other column a feature.
pub fn load(file: &Path, target: &str, classes: bool, seed: u64, test_fraction: f64) -> Result<Dataset> {
    load_with(file, target, &LoadOptions { classes, seed, test_fraction, ..LoadOptions::default() })
}

/// Loads `file`, predicting the column named `target`, as `opts` say (its `target` is not
/// read: the CSV reader needs one).
pub fn load_with(file: &Path, target: &str, opts: &LoadOptions) -> Result<Dataset> {
    let f = std::fs::File::open(file).map_err(|err| Error::Io { action: "cannot open", path: file.into(), err })?;
    parse_with(file, std::io::BufReader::new(f), target, opts)
}

/// [`load`] from any reader (`file` names it in messages; exposed for tests and fuzzing).
pub fn parse(
    file: &Path,
    input: impl std::io::Read,
    target: &str,
    classes: bool,
    seed: u64,
    test_fraction: f64,
) -> Result<Dataset> {
    parse_with(file, input, target, &LoadOptions { classes, seed, test_fraction, ..LoadOptions::default() })
}

/// The position of column `name`, or an error naming the closest column and the flag.
fn column(file: &Path, headers: &[String], key: &str, name: &str) -> Result<usize> {
    headers.iter().position(|h| h == name).ok_or_else(|| {
        let names: Vec<&str> = headers.iter().map(String::as_str).collect();
        Error::invalid(
            key,
            name,
            format!(
                "no such column in {}{}; columns: {}",
                file.display(),
                crate::error::closest(name, &names).map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default(),
                names.join(", ")
            ),
        )
    })
}

/// The feature columns: `--features` in its order, or every column but the target and `--drop`.
fn feature_columns(file: &Path, headers: &[String], t: usize, target: &str, opts: &LoadOptions) -> Result<Vec<usize>> {
    let cols = match (opts.features, opts.drop) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "drop",
                opts.drop.unwrap_or_default().join(","),
                "give features or drop, not both",
            ));
        }
        (Some(names), None) => {
            let mut cols = Vec::with_capacity(names.len());
            for name in names {
                let c = column(file, headers, "features", name)?;
                if c == t {
                    return Err(Error::invalid(
                        "features",
                        name,
                        "is the target column; a feature cannot be the target",
                    ));
                }
                if cols.contains(&c) {
                    return Err(Error::invalid("features", name, "is listed twice"));
                }
                cols.push(c);
            }
            cols
        }
        (None, drop) => {
            let mut dropped = Vec::new();
            for name in drop.unwrap_or_default() {
                let c = column(file, headers, "drop", name)?;
                if c == t {
                    return Err(Error::invalid(
                        "drop",
                        name,
                        format!("is the target column '{target}'; it is never a feature"),
                    ));
                }
                dropped.push(c);
            }
            (0..headers.len()).filter(|c| *c != t && !dropped.contains(c)).collect()
        }
    };
    if cols.is_empty() {
        return Err(Error::invalid(
            if opts.features.is_some() { "features" } else { "drop" },
            "(every column)",
            format!("leaves no feature column besides the target '{target}'"),
        ));
    }
    Ok(cols)
}

/// [`parse`] with every option.
pub fn parse_with(file: &Path, input: impl std::io::Read, target: &str, opts: &LoadOptions) -> Result<Dataset> {
    let bad = |msg: String| Error::Data { path: file.into(), msg };
    let mut reader =
        ::csv::ReaderBuilder::new().has_headers(true).trim(::csv::Trim::All).from_reader(CrLfToLf::new(input));
    let headers: Vec<String> = reader.headers().map_err(|e| bad(e.to_string()))?.iter().map(str::to_string).collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(bad("no header row; the first line must name the columns".into()));
    }
    let t = column(file, &headers, "target", target)?;
    if headers.len() < 2 {
        return Err(bad("needs at least one feature column besides the target".into()));
    }
    let cols = feature_columns(file, &headers, t, target, opts)?;
    let mut is_feature = vec![false; headers.len()];
    for &c in &cols {
        is_feature[c] = true;
    }
    let mut features: Vec<f32> = Vec::new();
    let mut targets: Vec<String> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    for (r, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| bad(format!("{e}; every row needs {} comma-separated cells", headers.len())))?;
        let line = record.position().map_or(r + 2, |p| p.line() as usize);
        let number = |c: usize| -> Result<f64> {
            let cell = &record[c];
            let v: f64 = cell.parse().map_err(|_| {
                let what = if cell.is_empty() { "empty".to_string() } else { format!("'{cell}', not a number") };
                bad(format!("line {line}, column '{}': {what}; fill or drop the row", headers[c]))
            })?;
            if !v.is_finite() {
                return Err(bad(format!(
                    "line {line}, column '{}': {cell} is not finite; remove or impute it",
                    headers[c]
                )));
            }
            Ok(v)
        };
        // cells in file order, so that the first bad cell of a row is the one named
        for c in 0..headers.len() {
            if c == t {
                if !opts.classes {
                    number(c)?;
                } else if record[c].is_empty() {
                    return Err(bad(format!("line {line}, column '{}': empty; fill or drop the row", headers[c])));
                }
            } else if is_feature[c] {
                number(c)?;
            }
        }
        features.extend(cols.iter().map(|&c| record[c].parse::<f64>().expect("checked above") as f32));
        targets.push(record[t].to_string());
        lines.push(line);
    }
    let n = targets.len();
    if n == 0 {
        return Err(bad("no data rows after the header".into()));
    }
    let x = Array2::from_shape_vec((n, cols.len()), features).expect("rows have equal length");
    let (y, classes) = if opts.classes {
        class_labels(&targets, &lines, target, opts).map_err(bad)?
    } else {
        let v = targets.iter().map(|c| c.parse::<f64>().expect("checked above") as f32).collect();
        (Labels::Values(Array2::from_shape_vec((n, 1), v).expect("n×1")), None)
    };
    let all = Split { x, y };
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5eed_c5f0));
    let n_test = ((n as f64) * opts.test_fraction).round() as usize;
    if n_test >= n {
        return Err(Error::invalid(
            "test_fraction",
            opts.test_fraction,
            format!("leaves no training rows of {n}; use a value below 1"),
        ));
    }
    // The shuffle only chooses the held-out rows; both splits keep the file's order.
    let (mut train_idx, mut test_idx) = (order[..n - n_test].to_vec(), order[n - n_test..].to_vec());
    train_idx.sort_unstable();
    test_idx.sort_unstable();
    let (train_idx, test_idx) = (&train_idx[..], &test_idx[..]);
    Ok(Dataset {
        name: format!("csv:{}", file.display()),
        train: all.select(train_idx),
        test: all.select(test_idx),
        classes,
    })
}

/// Class labels from the target cells: integers as they are (n_classes = largest + 1), or, when
/// some cell is not a number, the distinct strings sorted (label = position), or the given
/// `class_names`. Returns the names for string labels.
fn class_labels(
    cells: &[String],
    lines: &[usize],
    target: &str,
    opts: &LoadOptions,
) -> std::result::Result<(Labels, Option<Vec<String>>), String> {
    let names: Vec<String> = match opts.class_names {
        Some(names) => names.to_vec(),
        None if cells.iter().all(|c| c.parse::<f64>().is_ok()) => {
            let mut labels = Vec::with_capacity(cells.len());
            for (i, c) in cells.iter().enumerate() {
                let v: f64 = c.parse().expect("checked");
                if v < 0.0 || v.fract() != 0.0 || v > 1e6 {
                    return Err(format!(
                        "row {}: target '{target}' = {v} is not a class label (a non-negative integer or a name); \
                         use --loss mse or sse for a real-valued target",
                        i + 1
                    ));
                }
                labels.push(v as usize);
            }
            let n_classes = labels.iter().max().map_or(0, |m| m + 1).max(2);
            return Ok((Labels::Classes { labels, n_classes }, None));
        }
        None => {
            let set: std::collections::BTreeSet<&str> = cells.iter().map(String::as_str).collect();
            if set.len() < 2 {
                return Err(format!(
                    "target '{target}' holds one class only ('{}'); classification needs at least two",
                    cells[0]
                ));
            }
            set.into_iter().map(str::to_string).collect()
        }
    };
    let index: std::collections::HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut labels = Vec::with_capacity(cells.len());
    for (c, line) in cells.iter().zip(lines) {
        let Some(&l) = index.get(c.as_str()) else {
            return Err(format!(
                "line {line}, column '{target}': '{c}' is not one of the run's classes ({}); \
                 probe data with the classes the run was trained on",
                names.join(", ")
            ));
        };
        labels.push(l);
    }
    let n_classes = names.len();
    Ok((Labels::Classes { labels, n_classes }, Some(names)))
}

/// Turns CRLF line ends into LF as the bytes stream by. The csv crate places a record that
/// follows a CRLF on the line before (it starts counting at the LF): with LF only, the line
/// numbers in messages are right for Windows files too.
struct CrLfToLf<R> {
    inner: R,
    /// A CR was the last byte read; it is dropped if a LF follows, else written out.
    pending_cr: bool,
    /// Converted bytes not yet handed out, from `at`.
    out: Vec<u8>,
    at: usize,
    chunk: Vec<u8>,
}

impl<R> CrLfToLf<R> {
    fn new(inner: R) -> Self {
        Self { inner, pending_cr: false, out: Vec::new(), at: 0, chunk: vec![0; 8 * 1024] }
    }
}

impl<R: std::io::Read> std::io::Read for CrLfToLf<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            self.out.clear();
            self.at = 0;
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                if std::mem::take(&mut self.pending_cr) {
                    self.out.push(b'\r');
                    break;
                }
                return Ok(0);
            }
            for &b in &self.chunk[..n] {
                if std::mem::take(&mut self.pending_cr) && b != b'\n' {
                    self.out.push(b'\r');
                }
                if b == b'\r' {
                    self.pending_cr = true;
                } else {
                    self.out.push(b);
                }
            }
        }
        let k = buf.len().min(self.out.len() - self.at);
        buf[..k].copy_from_slice(&self.out[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn regression_and_classification() {
        let f = write("\u{feff}a,b,y\r\n1,2,0.5\r\n3,4,1.5\r\n5,6,2.5\r\n7,8,3.5\r\n");
        let d = load(f.path(), "y", false, 0, 0.25).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.inputs(), d.outputs()), (3, 1, 2, 1));
        let mut ys: Vec<f32> = match (&d.train.y, &d.test.y) {
            (Labels::Values(a), Labels::Values(b)) => a.iter().chain(b.iter()).copied().collect(),
            _ => panic!(),
        };
        ys.sort_by(f32::total_cmp);
        assert_eq!(ys, [0.5, 1.5, 2.5, 3.5]);
        let f = write("x,label\n0.1,0\n0.2,2\n0.3,1\n");
        let d = load(f.path(), "label", true, 0, 0.0).unwrap();
        assert_eq!(d.outputs(), 3);
        assert_eq!(d.train.x.column(0).to_vec(), [0.1, 0.2, 0.3], "file order kept");
        assert!(d.test.is_empty());
    }

    #[test]
    fn crlf_becomes_lf_and_lone_cr_stays() {
        use std::io::Read;
        for text in ["a\r\nb\r\n", "\r", "\r\r\n\n", "x\ry\r", "", "\r\n\r\n"] {
            // one byte at a time, so that every CR ends a chunk
            let mut got = Vec::new();
            CrLfToLf::new(text.as_bytes()).read_to_end(&mut got).unwrap();
            let mut slow = Vec::new();
            let mut r = CrLfToLf::new(OneByte(text.as_bytes()));
            r.read_to_end(&mut slow).unwrap();
            let want = text.replace("\r\n", "\n");
            assert_eq!((String::from_utf8(got).unwrap(), String::from_utf8(slow).unwrap()), (want.clone(), want));
        }
    }

    struct OneByte<'a>(&'a [u8]);
    impl std::io::Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else { return Ok(0) };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn line_numbers_of_crlf_files() {
        let f = write("\u{feff}a,y\r\n1,2\r\nq,3\r\n");
        let e = load(f.path(), "y", false, 0, 0.0).unwrap_err().to_string();
        assert!(e.contains("line 3, column 'a': 'q'"), "{e}");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            ("a,y\n1,2\n3\n", "y", false, "2 comma-separated"),
            ("a,y\n1,2\nfoo,3\n", "y", false, "'foo', not a number"),
            ("a,y\n1,2\n,3\n", "y", false, "line 3, column 'a': empty"),
            ("a,y\n1,nan\n", "y", false, "not finite"),
            ("a,y\n1,2\n", "z", false, "no such column"),
            ("a,yy\n1,2\n", "y", false, "did you mean 'yy'"),
            ("a,y\n1,0.5\n", "y", true, "not a class label"),
            ("a,y\n1,-1\n", "y", true, "not a class label"),
            ("a,y\n", "y", false, "no data rows"),
        ];
        for (text, target, classes, want) in cases {
            let f = write(text);
            let e = load(f.path(), target, classes, 0, 0.0).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
