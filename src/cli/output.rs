//! Writing a run's folder, and what the terminal shows while and after it trains.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::io::{self, weights};
use crate::nn::Scalar;
use crate::probe::StepRecord;
use crate::report::model::{Verdict, verdict_sentence};
use crate::train::{Observer, Outcome, Summary};
use anstyle::{AnsiColor, Style};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub use crate::io::{CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, WEIGHTS_FILE};

/// Streams probe records to `metrics.jsonl` (one whole line per write) and drives the progress bar.
pub struct RunObserver {
    metrics: BufWriter<File>,
    path: PathBuf,
    bar: Option<ProgressBar>,
}

impl RunObserver {
    /// Creates `dir`, writes the resolved config and opens `metrics.jsonl`.
    pub fn create(dir: &Path, config: &Config, progress: bool) -> Result<Self> {
        io::create_dir(dir)?;
        io::write_atomic(&dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        let path = dir.join(METRICS_FILE);
        let file = File::create(&path).map_err(|err| Error::Io { action: "cannot create", path: path.clone(), err })?;
        let bar = (progress && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}")
                    .expect("valid template"),
            );
            bar
        });
        Ok(Self { metrics: BufWriter::new(file), path, bar })
    }

    /// Flushes `metrics.jsonl` and clears the bar.
    pub fn finish(mut self) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.metrics.flush().map_err(|err| Error::Io { action: "cannot write", path: self.path.clone(), err })?;
        self.metrics.get_ref().sync_all().map_err(|err| Error::Io {
            action: "cannot write",
            path: self.path.clone(),
            err,
        })
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
        self.metrics.write_all(line.as_bytes()).map_err(|err| Error::Io {
            action: "cannot write",
            path: self.path.clone(),
            err,
        })
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
        println!("diverged: the loss became non-finite at step {}", s.diverged_at_step.unwrap_or(0));
    }
    println!("wrote {}", dir.display());
}
