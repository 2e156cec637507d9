//! Writing a run's folder, and what the terminal shows while and after it trains.

use anstyle::{AnsiColor, Style};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gradscope::probe::StepRecord;
use gradscope::run::Observer;
use gradscope::summary::{RunStatus, Summary};
use gradscope::verdict::{self, Evidence};
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
                ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} steps  {rate}  eta {eta}  {msg}")
                    .expect("valid template")
                    .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&steps_per_second(s.per_sec()));
                    }),
            );
            bar
        });
        Self { bar }
    }
}

/// A training rate with three significant digits at most: "27.0 steps/s", "412 steps/s",
/// "0.53 steps/s" (indicatif's `{per_sec}` printed "27.0139/s").
pub fn steps_per_second(rate: f64) -> String {
    if !rate.is_finite() || rate <= 0.0 {
        return "– steps/s".into();
    }
    let decimals = if rate >= 100.0 {
        0
    } else if rate >= 10.0 {
        1
    } else {
        2
    };
    format!("{rate:.decimals$} steps/s")
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

/// What a finished (or interrupted) run's verdict is judged from.
pub fn evidence(s: &Summary, first: &StepRecord) -> Evidence {
    let finished = s.status != RunStatus::Interrupted;
    Evidence {
        layers: first.layers.len(),
        ratio_start: first.vanishing_ratio,
        ratio_end: Some(s.vanishing_ratio_final),
        loss_start: first.train_loss,
        loss_end: finished.then_some(s.train_loss),
        diverged_at: s.diverged.then(|| s.diverged_at_step.unwrap_or(0)),
    }
}

/// The verdict line with its headline in colour (green: healthy; red: vanishing, exploding or
/// did not learn; magenta: diverged or not finite); print it with [`crate::outln!`], which drops
/// the colour unless stdout is a terminal and `NO_COLOR` is unset.
pub fn styled_verdict(e: &Evidence) -> String {
    let plain = verdict::sentence(e);
    let v = verdict::judge(e);
    let color = match v.class() {
        "healthy" => AnsiColor::Green,
        "diverged" | "broken" => AnsiColor::Magenta,
        _ => AnsiColor::Red,
    };
    let style = Style::new().fg_color(Some(color.into())).bold();
    let word = v.headline();
    let head = plain.strip_suffix(word.as_str()).unwrap_or(&plain);
    format!("{head}{style}{word}{style:#}")
}

/// A recurrent run's ratio through time, ‖∂L/∂x_1‖ / ‖∂L/∂x_T‖, judged with the same words and
/// thresholds as the per-layer ratio.
pub fn time_line(start: f64, end: Option<f64>) -> String {
    let judged = |r: f64| format!("{} ({})", sci(r), verdict::Flow::of(r).word());
    let mut line = format!("through time: ‖∂L/∂x_1‖/‖∂L/∂x_T‖ = {} at step 0", judged(start));
    if let Some(r) = end {
        line += &format!(", {} at the end", judged(r));
    }
    line
}

/// The lines `train` prints at the end.
pub fn print_summary(s: &Summary, first: &StepRecord, last: &StepRecord, activation: &str, dir: &Path) {
    crate::outln!("{}", layer_table(&[first, last], activation));
    crate::outln!("{}", styled_verdict(&evidence(s, first)));
    let mut line = format!("steps {}  train loss {}", s.steps, sci(s.train_loss));
    if let Some(t) = s.test_loss {
        line += &format!("  test loss {}", sci(t));
    }
    if let Some(a) = s.test_accuracy {
        line += &format!("  test accuracy {:.2}%", 100.0 * a);
    }
    line += &format!("  ({:.1} s)", s.wall_time_s);
    crate::outln!("{line}");
    if let Some(r0) = s.vanishing_ratio_time {
        crate::outln!("{}", time_line(r0, s.vanishing_ratio_time_final));
    }
    if s.diverged {
        match &s.nonfinite {
            Some(at) => crate::outln!("diverged: {at}"),
            None => crate::outln!("diverged: the loss became non-finite at step {}", s.diverged_at_step.unwrap_or(0)),
        }
    } else if s.skipped_steps > 0 {
        let at = s.nonfinite.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
        crate::outln!("skipped {} updates for a NaN or infinity{at}", s.skipped_steps);
    }
    if s.status == RunStatus::Interrupted {
        crate::outln!("interrupted after step {}; continue with: gradscope train --resume {}", s.steps, dir.display());
    }
    crate::outln!("wrote {}", dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_have_sensible_precision() {
        assert_eq!(steps_per_second(27.0139), "27.0 steps/s");
        assert_eq!(steps_per_second(412.7), "413 steps/s");
        assert_eq!(steps_per_second(0.5312), "0.53 steps/s");
        assert_eq!(steps_per_second(0.0), "– steps/s");
    }
}
