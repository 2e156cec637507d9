//! Writing a run's folder, and what the terminal shows while and after it trains.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::checkpoint::Checkpoint;
use crate::io::{self, weights};
use crate::nn::Scalar;
use crate::probe::StepRecord;
use crate::report::model::{Verdict, verdict_sentence};
use crate::train::{Observer, Outcome, Summary};
use anstyle::{AnsiColor, Style};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

pub use crate::io::{CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, WEIGHTS_FILE};

/// Streams probe records to `metrics.jsonl` (one whole line per write, appended), drives the
/// progress bar, writes checkpoints and asks [`super::interrupted`] once a step.
pub struct RunObserver {
    metrics: File,
    path: PathBuf,
    dir: PathBuf,
    config: String,
    metrics_len: u64,
    bar: Option<ProgressBar>,
}

/// How [`RunObserver::open`] treats the output folder.
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
pub const RUN_FILES: [&str; 5] = [CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, WEIGHTS_FILE, io::CHECKPOINT_FILE];

/// Whether `dir` holds (part of) a run.
pub fn holds_run(dir: &Path) -> bool {
    RUN_FILES.iter().any(|f| dir.join(f).exists())
}

impl RunObserver {
    /// Creates `dir`, writes the resolved config and creates `metrics.jsonl`; refuses a folder
    /// that already holds a run.
    pub fn create(dir: &Path, config: &Config, progress: bool) -> Result<Self> {
        Self::open(dir, config, progress, Mode::New)
    }

    /// Opens `dir` for a run as `mode` says (see [`Mode`]).
    pub fn open(dir: &Path, config: &Config, progress: bool, mode: Mode) -> Result<Self> {
        let text = config.to_toml();
        let path = dir.join(METRICS_FILE);
        fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
            move |err| Error::Io { action, path: path.into(), err }
        }
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
                let extra = [
                    io::COMMAND_FILE,
                    "report.html",
                    crate::prepare::DATA_FILE,
                    crate::data::standardize::STANDARDIZE_FILE,
                ];
                for f in RUN_FILES.iter().chain(&extra) {
                    let p = dir.join(f);
                    if p.exists() {
                        std::fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
                    }
                }
                io::write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
                File::create(&path).map_err(io_err("cannot create", &path))?
            }
            Mode::Resume(len) => {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(io_err("cannot open", &path))?;
                let have = f.metadata().map_err(io_err("cannot read", &path))?.len();
                if have < len {
                    return Err(Error::Folder {
                        path: dir.into(),
                        msg: format!(
                            "{METRICS_FILE} holds {have} bytes, fewer than the {len} the checkpoint recorded; \
                             start afresh with --overwrite"
                        ),
                    });
                }
                f.set_len(len).map_err(io_err("cannot write", &path))?;
                f.sync_all().map_err(io_err("cannot write", &path))?;
                drop(f);
                OpenOptions::new().append(true).open(&path).map_err(io_err("cannot open", &path))?
            }
        };
        remove_stale_temporaries(dir);
        let metrics_len = metrics.metadata().map_err(io_err("cannot read", &path))?.len();
        let bar = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}")
                    .expect("valid template"),
            );
            bar
        });
        Ok(Self { metrics, path, dir: dir.into(), config: text, metrics_len, bar })
    }

    /// Syncs `metrics.jsonl` and clears the bar.
    pub fn finish(mut self) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.metrics.sync_all().map_err(|err| Error::Io { action: "cannot write", path: self.path.clone(), err })
    }
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

impl Observer for RunObserver {
    fn on_start(&mut self, total_steps: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total_steps);
        }
    }

    fn on_step(&mut self, step: u64, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step + 1);
            if step.is_multiple_of(50) {
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
    }

    fn on_record(&mut self, record: &StepRecord) -> Result<()> {
        let mut line = serde_json::to_string(record).expect("gradscope internal error: records serialise");
        line.push('\n');
        // one write of the whole line to a file opened for appending: no line is ever split
        // by a buffer flush, and a resumed run cuts the file back at a line end
        self.metrics.write_all(line.as_bytes()).map_err(|err| Error::Io {
            action: "cannot write",
            path: self.path.clone(),
            err,
        })?;
        self.metrics_len += line.len() as u64;
        Ok(())
    }

    fn should_stop(&mut self) -> bool {
        super::interrupted()
    }

    fn on_checkpoint(&mut self, checkpoint: &mut Checkpoint) -> Result<()> {
        self.metrics.sync_all().map_err(|err| Error::Io { action: "cannot write", path: self.path.clone(), err })?;
        checkpoint.meta.metrics_len = self.metrics_len;
        checkpoint.meta.config = self.config.clone();
        io::write_atomic(&self.dir.join(io::CHECKPOINT_FILE), &checkpoint.to_bytes())
    }
}

/// Writes `weights.safetensors` and `summary.json` of a finished run.
pub fn write_outcome<F: Scalar>(dir: &Path, outcome: &Outcome<F>) -> Result<()> {
    io::write_atomic(&dir.join(WEIGHTS_FILE), &weights::mlp_to_bytes(&outcome.mlp))?;
    io::write_json(&dir.join(SUMMARY_FILE), &outcome.summary)
}

pub use crate::report::model::sci;

/// The per-layer table: each record's gradient norm and saturation, side by side.
pub fn layer_table(records: &[&StepRecord], hidden_activation: &str) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    let mut header = vec!["layer".to_string()];
    header.extend(records.iter().map(|r| format!("‖∂L/∂W‖ step {}", r.step)));
    header.extend(records.iter().map(|r| format!("saturated step {}", r.step)));
    t.set_header(header);
    let n = records[0].layers.len();
    for l in 0..n {
        let name = if l + 1 == n { format!("{l} (output)") } else { format!("{l} ({hidden_activation})") };
        let mut row = vec![name];
        row.extend(records.iter().map(|r| sci(r.layers[l].grad_w_norm)));
        row.extend(records.iter().map(|r| format!("{:.0}%", 100.0 * r.layers[l].saturation)));
        t.add_row(row);
    }
    t
}

/// One sentence on what the first/last gradient ratio means.
pub fn verdict(ratio: f64, layers: usize) -> String {
    verdict_sentence(ratio, layers)
}

/// The verdict with its last word in colour (red: vanishing or exploding, green: healthy);
/// print it with `anstream`, which drops the colour unless stdout is a terminal and `NO_COLOR`
/// is unset.
pub fn styled_verdict(ratio: f64, layers: usize) -> String {
    let plain = verdict(ratio, layers);
    let v = Verdict::of(ratio);
    let color = match v {
        Verdict::Vanishing | Verdict::Exploding => AnsiColor::Red,
        Verdict::Healthy => AnsiColor::Green,
        Verdict::Broken => AnsiColor::Magenta,
    };
    let style = Style::new().fg_color(Some(color.into())).bold();
    let word = v.word();
    let head = plain.strip_suffix(word).unwrap_or(&plain);
    format!("{head}{style}{word}{style:#}")
}

/// The lines `train` prints at the end.
pub fn print_summary(s: &Summary, first: &StepRecord, last: &StepRecord, activation: &str, dir: &Path) {
    println!("{}", layer_table(&[first, last], activation));
    anstream::println!("{}", styled_verdict(first.vanishing_ratio, first.layers.len()));
    let mut line = format!("steps {}  train loss {}", s.steps, sci(s.train_loss));
    if let Some(t) = s.test_loss {
        line += &format!("  test loss {}", sci(t));
    }
    if let Some(a) = s.test_accuracy {
        line += &format!("  test accuracy {:.2}%", 100.0 * a);
    }
    line += &format!("  ({:.1} s)", s.wall_time_s);
    println!("{line}");
    if s.diverged {
        match &s.nonfinite {
            Some(at) => println!("diverged: {at}"),
            None => println!("diverged: the loss became non-finite at step {}", s.diverged_at_step.unwrap_or(0)),
        }
    } else if s.skipped_steps > 0 {
        let at = s.nonfinite.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
        println!("skipped {} updates for a NaN or infinity{at}", s.skipped_steps);
    }
    if s.status == crate::train::RunStatus::Interrupted {
        println!("interrupted after step {}; continue with: gradscope train --resume {}", s.steps, dir.display());
    }
    println!("wrote {}", dir.display());
}
