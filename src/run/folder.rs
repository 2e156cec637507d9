//! [`RunDir`]: a run's folder. Creates, refuses, overwrites or resumes it; appends probe
//! records to `metrics.jsonl`; writes checkpoints, the weights and the summary.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::checkpoint::Checkpoint;
use crate::io::{
    self, CHECKPOINT_FILE, COMMAND_FILE, CONFIG_FILE, DATA_FILE, METRICS_FILE, STANDARDIZE_FILE, SUMMARY_FILE,
    WEIGHTS_FILE, weights,
};
use crate::nn::Scalar;
use crate::probe::StepRecord;
use crate::summary::{RunStatus, Summary};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Outcome;

/// How [`RunDir::open`] treats the folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The folder must not hold a run (it may exist and hold other files).
    New,
    /// A run there is replaced: its files are removed first.
    Overwrite,
    /// Continue the run there: `metrics.jsonl` is cut to this many bytes and appended to.
    Resume(u64),
}

/// The files of a run, any of which marks a folder as holding one.
pub const RUN_FILES: [&str; 5] = [CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, WEIGHTS_FILE, CHECKPOINT_FILE];

/// Whether `dir` holds (part of) a run.
pub fn holds_run(dir: &Path) -> bool {
    RUN_FILES.iter().any(|f| dir.join(f).exists())
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |err| Error::Io { action, path: path.into(), err }
}

/// An open run folder: `config.toml` written, `metrics.jsonl` open for appending (one whole
/// line per write, so that no line is ever split by a buffer flush).
pub struct RunDir {
    dir: PathBuf,
    metrics: File,
    metrics_path: PathBuf,
    config: String,
    metrics_len: u64,
}

impl RunDir {
    /// Opens `dir` for a run of `config` (the resolved config, saved as `config.toml`) as `mode`
    /// says, and removes the temporaries a killed write left there.
    pub fn open(dir: &Path, config: &Config, mode: Mode) -> Result<Self> {
        Self::open_text(dir, config.to_toml(), mode)
    }

    /// [`RunDir::open`] with the text of `config.toml` given (a config and more tables).
    pub fn open_text(dir: &Path, text: String, mode: Mode) -> Result<Self> {
        let path = dir.join(METRICS_FILE);
        let metrics = match mode {
            Mode::New | Mode::Overwrite => {
                if mode == Mode::New && holds_run(dir) {
                    return Err(Error::Folder {
                        path: dir.into(),
                        msg: "already holds a run; pass --overwrite to replace it, --resume DIR to continue \
                              it, or choose another --out"
                            .into(),
                    });
                }
                io::create_dir(dir)?;
                for f in RUN_FILES.iter().chain(&[COMMAND_FILE, DATA_FILE, STANDARDIZE_FILE, "report.html"]) {
                    let p = dir.join(f);
                    if p.exists() {
                        std::fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
                    }
                }
                io::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
                File::create(&path).map_err(io_err("cannot create", &path))?
            }
            Mode::Resume(len) => open_cut(dir, &path, len)?,
        };
        remove_stale_temporaries(dir);
        let metrics_len = metrics.metadata().map_err(io_err("cannot read", &path))?.len();
        Ok(Self { dir: dir.into(), metrics, metrics_path: path, config: text, metrics_len })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends one probe record to `metrics.jsonl` as one line.
    pub fn append(&mut self, record: &StepRecord) -> Result<()> {
        let mut line = serde_json::to_string(record).expect("gradscope internal error: records serialise");
        line.push('\n');
        // one write of the whole line to a file opened for appending: a resumed run cuts the
        // file back at a line end
        self.metrics.write_all(line.as_bytes()).map_err(io_err("cannot write", &self.metrics_path))?;
        self.metrics_len += line.len() as u64;
        Ok(())
    }

    /// Writes `checkpoint.safetensors` atomically; `capture(metrics_len, config)` makes the
    /// checkpoint (see [`super::Trainer::checkpoint`]).
    pub fn save_checkpoint(&mut self, capture: &dyn Fn(u64, String) -> Checkpoint) -> Result<()> {
        self.metrics.sync_all().map_err(io_err("cannot write", &self.metrics_path))?;
        let ck = capture(self.metrics_len, self.config.clone());
        io::write_atomic(&self.dir.join(CHECKPOINT_FILE), &ck.to_bytes())
    }

    /// Syncs `metrics.jsonl` and writes `weights.safetensors` and `summary.json`.
    pub fn finish<F: Scalar>(self, outcome: &Outcome<F>) -> Result<()> {
        self.metrics.sync_all().map_err(io_err("cannot write", &self.metrics_path))?;
        io::write_atomic(
            &self.dir.join(WEIGHTS_FILE),
            &match &outcome.model {
                super::Model::Mlp(m) => weights::mlp_to_bytes(m),
                super::Model::Recurrent(n) => crate::io::recurrent::to_safetensors(n),
            },
        )?;
        io::write_json(&self.dir.join(SUMMARY_FILE), &outcome.summary)
    }
}

impl RunDir {
    /// Syncs `metrics.jsonl` and writes `summary.json` (a run trained elsewhere: no weights).
    pub fn finish_summary(self, summary: &Summary) -> Result<()> {
        self.metrics.sync_all().map_err(io_err("cannot write", &self.metrics_path))?;
        io::write_json(&self.dir.join(SUMMARY_FILE), summary)
    }
}

/// Opens `metrics.jsonl` for appending after cutting it to `len` bytes.
fn open_cut(dir: &Path, path: &Path, len: u64) -> Result<File> {
    let f =
        OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(io_err("cannot open", path))?;
    let have = f.metadata().map_err(io_err("cannot read", path))?.len();
    if have < len {
        return Err(Error::Folder {
            path: dir.into(),
            msg: format!(
                "{METRICS_FILE} holds {have} bytes, fewer than the {len} the checkpoint recorded; \
                 start afresh with --overwrite"
            ),
        });
    }
    f.set_len(len).map_err(io_err("cannot write", path))?;
    f.sync_all().map_err(io_err("cannot write", path))?;
    drop(f);
    OpenOptions::new().append(true).open(path).map_err(io_err("cannot open", path))
}

/// Removes the temporary files of atomic writes that a killed gradscope left in `dir` (best
/// effort: a file that cannot be removed is left).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(io::TEMP_PREFIX) && name.ends_with(io::TEMP_SUFFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The summary of a run in `dir` that ended (completed or diverged), if it has one.
pub fn finished_summary(dir: &Path) -> Result<Option<Summary>> {
    let path = dir.join(SUMMARY_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
    let s: Summary = serde_json::from_str(&text).map_err(|e| Error::Folder {
        path: path.clone(),
        msg: format!("is not a gradscope summary ({e}); start afresh with --overwrite"),
    })?;
    Ok((s.status != RunStatus::Interrupted).then_some(s))
}
