//! Writing a run's folder, and what the terminal shows while and after it trains.

use anstyle::{AnsiColor, Style};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gradscope::probe::StepRecord;
use gradscope::report::model::{Verdict, verdict_sentence};
use gradscope::run::Observer;
use gradscope::summary::{RunStatus, Summary};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;

/// The terminal side of a run: the progress bar (on a terminal), and Ctrl-C, which
/// [`super::interrupted`] reads once a step.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A progress bar when `show` and stderr is a terminal.
    pub fn new(show: bool) -> Self {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}")
                    .expect("valid template"),
            );
            bar
        });
        Self { bar }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
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

    fn should_stop(&mut self) -> bool {
        super::interrupted()
    }
}

pub use gradscope::report::model::sci;

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
    if s.status == RunStatus::Interrupted {
        println!("interrupted after step {}; continue with: gradscope train --resume {}", s.steps, dir.display());
    }
    println!("wrote {}", dir.display());
}
