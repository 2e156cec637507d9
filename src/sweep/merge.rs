//! Joins the results of several sweep folders (shards) of one sweep into one table.

use super::results::{self, RESULTS_JSONL, Row};
use super::{Sweep, difference, read_sweep};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The joined table and what is wrong with it.
#[derive(Debug)]
pub struct Merged {
    /// The sweep (the same in every folder).
    pub sweep: Sweep,
    /// Its file text (from the first folder).
    pub text: String,
    /// One row per point found, by index (the first folder's, where a point is duplicated).
    pub rows: Vec<Row>,
    /// Indices of the grid points no folder has.
    pub missing: Vec<usize>,
    /// Points found more than once: id and the folders they were found in.
    pub duplicates: Vec<(String, Vec<PathBuf>)>,
    /// Torn last lines skipped (a shard killed while appending), by folder.
    pub torn: Vec<PathBuf>,
}

/// Reads every folder's `sweep.toml` (they must hold the same sweep) and `results.jsonl`.
pub fn merge(dirs: &[PathBuf]) -> Result<Merged> {
    let Some(first) = dirs.first() else {
        return Err(Error::invalid("merge", "(no folder)", "give the sweep folders to merge"));
    };
    let (sweep, text) = read_sweep(first)?;
    let keys = sweep.keys();
    let mut found: Vec<Vec<(PathBuf, Row)>> = vec![Vec::new(); sweep.len()];
    let mut torn = Vec::new();
    for dir in dirs {
        let (other, _) = read_sweep(dir)?;
        if let Some(d) = difference(&sweep, &other) {
            return Err(Error::invalid(
                "merge",
                dir.display(),
                format!("holds another sweep than {} ({d}); only shards of one sweep can be merged", first.display()),
            ));
        }
        let path = dir.join(RESULTS_JSONL);
        if !path.exists() {
            continue; // a shard that never started
        }
        let (rows, bad) = results::read_jsonl(&path, &keys)?;
        if bad > 0 {
            torn.push(dir.clone());
        }
        for row in rows {
            if row.index >= sweep.len() || row.id != sweep.id(row.index) {
                return Err(Error::Data {
                    path,
                    msg: format!("row '{}' (index {}) is not a point of this sweep's grid", row.id, row.index),
                });
            }
            check_values(&sweep, &row, &path)?;
            found[row.index].push((dir.clone(), row));
        }
    }
    let mut rows = Vec::new();
    let (mut missing, mut duplicates) = (Vec::new(), Vec::new());
    for (i, mut f) in found.into_iter().enumerate() {
        if f.is_empty() {
            missing.push(i);
            continue;
        }
        if f.len() > 1 {
            duplicates.push((sweep.id(i), f.iter().map(|(d, _)| d.clone()).collect()));
        }
        rows.push(f.swap_remove(0).1);
    }
    Ok(Merged { sweep, text, rows, missing, duplicates, torn })
}

/// A row's swept values and seed must be its point's.
fn check_values(sweep: &Sweep, row: &Row, path: &Path) -> Result<()> {
    let p = sweep.point(row.index)?;
    let same = p.seed == row.seed
        && p.values.iter().zip(&row.values).all(|((_, a), (_, b))| {
            let a = serde_json::to_value(a).expect("TOML values are JSON values");
            a == *b || a.as_f64().is_some() && a.as_f64() == b.as_f64()
        });
    if same {
        Ok(())
    } else {
        Err(Error::Data { path: path.into(), msg: format!("row '{}' has other values than its grid point", row.id) })
    }
}

/// "0003 (depth = 10, sigma_w2 = 1.25, seed 0)".
pub fn describe(sweep: &Sweep, index: usize) -> String {
    match sweep.point(index) {
        Ok(p) => {
            let vals: Vec<String> = p.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{} ({}, seed {})", p.id, vals.join(", "), p.seed)
        }
        Err(_) => sweep.id(index),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SWEEP_FILE, results::write_tables};
    use super::*;
    use crate::summary::Summary;

    fn summary() -> Summary {
        Summary {
            gradscope_version: "0".into(),
            data: "regression".into(),
            seed: 0,
            threads: 1,
            steps: 3,
            epochs: 1,
            train_loss: 0.5,
            test_loss: Some(0.6),
            train_accuracy: None,
            test_accuracy: None,
            vanishing_ratio: 0.1,
            vanishing_ratio_final: 0.2,
            diverged: false,
            diverged_at_step: None,
            wall_time_s: 0.01,
            clipped_steps: 0,
            status: Default::default(),
            nonfinite: None,
            skipped_steps: 0,
            vanishing_ratio_time: None,
            vanishing_ratio_time_final: None,
        }
    }

    const TEXT: &str = "seeds = 2\n[grid]\ndepth = [1, 2, 3]";

    fn shard(dir: &Path, indices: &[usize]) {
        let sweep = Sweep::from_toml(TEXT, "t").unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(SWEEP_FILE), TEXT).unwrap();
        let rows: Vec<Row> = indices
            .iter()
            .map(|&i| {
                let p = sweep.point(i).unwrap();
                Row::new(&p.id, i, &p.values, p.seed, &summary())
            })
            .collect();
        write_tables(dir, &sweep.keys(), &rows).unwrap();
    }

    #[test]
    fn finds_missing_and_duplicate_points() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        shard(&a, &[0, 2, 4]);
        shard(&b, &[1, 3, 5]);
        let m = merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.rows.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert!(m.missing.is_empty() && m.duplicates.is_empty());
        shard(&b, &[1, 2, 5]);
        let m = merge(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.missing, [3]);
        assert_eq!(m.duplicates, [("0002".to_string(), vec![a.clone(), b.clone()])]);
        assert_eq!(m.rows.len(), 5);
        assert_eq!(describe(&m.sweep, 3), "0003 (depth = 2, seed 1)");
        // a folder of another sweep is refused
        std::fs::write(b.join(SWEEP_FILE), "seeds = 2\n[grid]\ndepth = [1, 2, 4]").unwrap();
        let e = merge(&[a.clone(), b.clone()]).unwrap_err().to_string();
        assert!(e.contains("depth has other values"), "{e}");
        let e = merge(&[t.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("no sweep.toml"), "{e}");
    }
}
