//! Sweeps: a grid of runs over config keys and seeds, run over the cores, resumable, shardable.
//!
//! - [`grid`]: `SWEEP.toml` → [`Sweep`] → [`Point`]s, and [`Shard`] slices of them;
//! - [`results`]: the rows of `results.jsonl` / `results.csv`;
//! - [`schedule`]: a pool of workers, one result writer;
//! - [`SweepDir`]: the output folder: `sweep.toml`, `runs/<id>/`, the tables, the lock;
//! - [`merge`]: shards' tables joined, missing and duplicate points found;
//! - [`phase`]: a metric over two swept keys, with the mean-field trainable depth.

pub mod grid;
pub mod merge;
pub mod phase;
pub mod results;
pub mod schedule;

pub use grid::{GridAxis, Point, Scale, Shard, Sweep};
pub use results::Row;

use crate::error::{Error, Result};
use crate::io;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The sweep file, copied verbatim into the output folder.
pub const SWEEP_FILE: &str = "sweep.toml";
/// Run folders live under this subfolder.
pub const RUNS_DIR: &str = "runs";
/// The lock that keeps two sweeps from writing one folder at once.
pub const LOCK_FILE: &str = ".sweep.lock";

/// Reads and parses a folder's `sweep.toml`.
pub fn read_sweep(dir: &Path) -> Result<(Sweep, String)> {
    let path = dir.join(SWEEP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => Error::RunFolder {
            path: dir.into(),
            msg: format!("no {SWEEP_FILE}: not a folder written by `gradscope sweep`"),
        },
        _ => Error::Io { action: "cannot read", path: path.clone(), err },
    })?;
    Ok((Sweep::from_toml(&text, &path.display().to_string())?, text))
}

/// What differs between two sweeps (None when they have the same points).
pub fn difference(a: &Sweep, b: &Sweep) -> Option<String> {
    if a.base != b.base {
        let keys = |s: &Sweep| s.base.keys().cloned().collect::<std::collections::BTreeSet<_>>();
        let changed: Vec<String> =
            keys(a).union(&keys(b)).filter(|k| a.base.get(*k) != b.base.get(*k)).cloned().collect();
        return Some(format!("[base] differs in {}", changed.join(", ")));
    }
    if a.keys() != b.keys() {
        return Some(format!("[grid] sweeps {} here and {} there", a.keys().join(", "), b.keys().join(", ")));
    }
    for (x, y) in a.axes.iter().zip(&b.axes) {
        if x.values != y.values {
            return Some(format!("[grid] {} has other values", x.key));
        }
    }
    (a.seeds != b.seeds).then(|| "the seeds differ".to_string())
}

/// A sweep's output folder, locked for writing.
pub struct SweepDir {
    /// The folder.
    pub dir: PathBuf,
    /// The sweep it holds.
    pub sweep: Sweep,
    _lock: File,
}

impl SweepDir {
    /// Creates or reopens `dir` for `sweep` (whose file text is `text`): takes the lock and
    /// checks that a folder written before holds the same sweep.
    pub fn open(dir: &Path, sweep: Sweep, text: &str) -> Result<Self> {
        io::create_dir(&dir.join(RUNS_DIR))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|err| Error::Io { action: "cannot create", path: lock_path.clone(), err })?;
        if lock.try_lock().is_err() {
            return Err(Error::invalid(
                "out",
                dir.display(),
                "another `gradscope sweep` is writing this folder now; give each running sweep (or shard) its own --out",
            ));
        }
        if dir.join(SWEEP_FILE).exists() {
            let (old, _) = read_sweep(dir)?;
            if let Some(d) = difference(&old, &sweep) {
                return Err(Error::invalid(
                    "out",
                    dir.display(),
                    format!(
                        "holds another sweep ({d} from its {SWEEP_FILE}); resume it with that file, or give another --out"
                    ),
                ));
            }
        } else {
            io::write_atomic(&dir.join(SWEEP_FILE), text.as_bytes())?;
        }
        Ok(Self { dir: dir.to_path_buf(), sweep, _lock: lock })
    }

    /// The run folder of a point.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(RUNS_DIR).join(id)
    }

    /// Finds the finished runs (those with a `row.json`), removes every unfinished run folder,
    /// and rewrites both tables from the finished rows (atomically). Returns the finished rows,
    /// by index.
    pub fn recover(&self) -> Result<Vec<Row>> {
        let keys = self.sweep.keys();
        let runs = self.dir.join(RUNS_DIR);
        let entries =
            std::fs::read_dir(&runs).map_err(|err| Error::Io { action: "cannot read", path: runs.clone(), err })?;
        let mut rows = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| Error::Io { action: "cannot read", path: runs.clone(), err })?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            match results::read_row_file(&path, &keys)? {
                Some(row) => {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if row.index >= self.sweep.len() || row.id != self.sweep.id(row.index) || row.id != name {
                        return Err(Error::RunFolder {
                            path,
                            msg: "its row.json does not belong to this sweep's grid; remove the folder".into(),
                        });
                    }
                    rows.push(row);
                }
                None => std::fs::remove_dir_all(&path).map_err(|err| Error::Io {
                    action: "cannot remove",
                    path: path.clone(),
                    err,
                })?,
            }
        }
        rows.sort_by_key(|r| r.index);
        results::write_tables(&self.dir, &keys, &rows)?;
        Ok(rows)
    }

    /// Appends a finished run's row to both tables.
    pub fn append(&self, row: &Row) -> Result<()> {
        results::append_row(&self.dir, row)
    }

    /// Rewrites both tables from `rows`, sorted by index.
    pub fn finish(&self, rows: &mut [Row]) -> Result<()> {
        rows.sort_by_key(|r| r.index);
        results::write_tables(&self.dir, &self.sweep.keys(), rows)
    }
}
