//! `gradscope demo`: the lecture's argument, measured.
//!
//! Trains the sigmoid MLP h_l = σ(h_{l−1}·W_lᵀ + b_l) at depths 2, 5, 10 and 20 with PyTorch's
//! default init on the built-in regression set, then the 20-layer network again with
//! tanh + Xavier and with ReLU + He, all from the same seed and data, and prints each run's
//! per-layer gradient norms at step 0 and at the end.

use super::Status;
use super::args::DemoArgs;
use super::output::{self, sci};
use super::train::train_config;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use gradscope::config::{Config, RunSpec};
use gradscope::demo::{
    EXPLODING_SIGMA_W2, IRNN_LR, RECURRENT_HIDDEN, RECURRENT_LR, REMEDIES_CLIP_NORM, REMEDIES_DEPTH,
    REMEDIES_RESIDUAL_SCALE, recurrent_setups, remedies_setups, setups,
};
use gradscope::error::Named;
use gradscope::run::Outcome;
use std::path::{Path, PathBuf};

/// One finished demo run: its name, summary and loss at step 0.
type Row = (String, gradscope::Summary, f64, String);

/// Trains each setup into `out/NAME` (replacing the demo's own earlier run there), calling
/// `each` after every run; `None` when Ctrl-C interrupted a run (its checkpoint stays).
fn run_setups(
    setups: Vec<(String, Config)>,
    out: &Path,
    a: &DemoArgs,
    mut each: impl FnMut(&str, &Config, &RunSpec, &Outcome<f32>),
) -> anyhow::Result<Option<(Vec<Row>, Vec<PathBuf>)>> {
    let (mut rows, mut dirs) = (Vec::new(), Vec::new());
    for (name, config) in setups {
        let dir = out.join(&name);
        let (spec, outcome) = train_config(&config, &dir, !a.quiet, true)?;
        if outcome.summary.status == gradscope::RunStatus::Interrupted {
            eprintln!("interrupted during {name}; its checkpoint is in {}", dir.display());
            return Ok(None);
        }
        each(&name, &config, &spec, &outcome);
        let verdict = gradscope::verdict::judge(&output::evidence(&outcome.summary, &outcome.first)).headline();
        rows.push((name, outcome.summary.clone(), outcome.first.train_loss, verdict));
        dirs.push(dir);
    }
    Ok(Some((rows, dirs)))
}

/// The comparison table (with the divergence and clipping columns when `remedies`), printed
/// with the runs' folder, then the compared report unless `--no-report`.
fn finish(rows: &[Row], dirs: &[PathBuf], out: &Path, a: &DemoArgs, remedies: bool) -> anyhow::Result<()> {
    if !a.quiet {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED);
        let mut header = vec![
            "run",
            "vanishing ratio step 0",
            "vanishing ratio end",
            "loss step 0",
            "train loss end",
            "test loss end",
            "verdict",
        ];
        if remedies {
            header.extend(["diverged at", "clipped steps"]);
        }
        t.set_header(header);
        for (name, s, loss0, verdict) in rows {
            let mut row = vec![
                name.clone(),
                sci(s.vanishing_ratio),
                sci(s.vanishing_ratio_final),
                sci(*loss0),
                sci(s.train_loss),
                s.test_loss.map_or("-".into(), sci),
                verdict.clone(),
            ];
            if remedies {
                row.push(s.diverged_at_step.map_or("-".into(), |k| format!("step {k}")));
                row.push(s.clipped_steps.to_string());
            }
            t.add_row(row);
        }
        if remedies {
            crate::outln!(
                "\n{REMEDIES_DEPTH} hidden layers of 64 units, SGD lr 0.01 momentum 0.9; residual α = {REMEDIES_RESIDUAL_SCALE}, \
                 norms before φ, clip_norm {REMEDIES_CLIP_NORM}; relu-exploding: gaussian σ_w² = {EXPLODING_SIGMA_W2}"
            );
        } else {
            crate::outln!();
        }
        crate::outln!("vanishing ratio = ‖∂L/∂W‖ of the first layer / that of the output layer\n{t}");
        crate::outln!("{}", gradscope::verdict::RULES);
        crate::outln!("runs written under {}", out.display());
    }
    if !a.no_report {
        let html = super::report::make(dirs, out)?;
        if !a.quiet {
            crate::outln!("report: {}", html.display());
        }
    }
    Ok(())
}

/// The recurrent demo's table: per run T, the test MSE against the mean predictor's 1/6, the
/// ratio through time at step 0 and at the end, and the verdict (judged on that ratio).
fn finish_recurrent(rows: &[Row], dirs: &[PathBuf], out: &Path, a: &DemoArgs, secs: f64) -> anyhow::Result<()> {
    if !a.quiet {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED);
        t.set_header(["run", "test MSE", "‖∂L/∂x_1‖/‖∂L/∂x_T‖ step 0", "end", "through time", "verdict"]);
        for (name, s, _, verdict) in rows {
            let (r0, r1) =
                (s.vanishing_ratio_time.unwrap_or(f64::NAN), s.vanishing_ratio_time_final.unwrap_or(f64::NAN));
            let flow = gradscope::verdict::Flow::of(r1).word();
            t.add_row([
                name.clone(),
                s.test_loss.map_or("-".into(), sci),
                sci(r0),
                sci(r1),
                flow.into(),
                verdict.clone(),
            ]);
        }
        crate::outln!(
            "\nadding problem, hidden {RECURRENT_HIDDEN}, Adam lr {RECURRENT_LR} (IRNN {IRNN_LR}), batch 64; \
             predicting the mean gives test MSE {:.3}",
            gradscope::data::sequence::ADDING_BASELINE_MSE
        );
        crate::outln!("{t}");
        crate::outln!(
            "the gradient reaching the first input over that reaching the last; {}",
            gradscope::verdict::RULES
        );
        crate::outln!("{} runs in {secs:.0} s, written under {}", rows.len(), out.display());
    }
    if !a.no_report {
        let html = super::report::make(dirs, out)?;
        if !a.quiet {
            crate::outln!("report: {}", html.display());
        }
    }
    Ok(())
}

/// Runs `gradscope demo`.
///
/// The demo owns its runs' folders: running it again replaces them (other files under --out are
/// left alone). Ctrl-C ends it after the current run's step, with exit 130.
pub fn run(a: &DemoArgs) -> anyhow::Result<Status> {
    super::install_signal_handlers()?;
    if a.recurrent {
        let (out, start) = (a.out.join("recurrent"), std::time::Instant::now());
        let setups = recurrent_setups(a.steps.unwrap_or(2000), a.threads);
        let Some((rows, dirs)) = run_setups(setups, &out, a, |_, _, _, _| {})? else {
            return Ok(Status::Interrupted);
        };
        finish_recurrent(&rows, &dirs, &out, a, start.elapsed().as_secs_f64())?;
        return Ok(Status::Ok);
    }
    if a.remedies {
        let out = a.out.join("remedies");
        let Some((rows, dirs)) =
            run_setups(remedies_setups(a.steps.unwrap_or(1500), a.threads), &out, a, |_, _, _, _| {})?
        else {
            return Ok(Status::Interrupted);
        };
        finish(&rows, &dirs, &out, a, true)?;
        // divergence is the point of the unclipped exploding run, not a failure of the demo
        return Ok(Status::Ok);
    }
    let print_run = |name: &str, config: &Config, spec: &RunSpec, outcome: &Outcome<f32>| {
        if a.quiet {
            return;
        }
        crate::outln!(
            "\n{name}: {} hidden layers of {} {} units, {} init, {} steps of SGD (lr {}, momentum {})",
            spec.depth,
            spec.width,
            spec.activation.name(),
            spec.init.name(),
            outcome.summary.steps,
            spec.lr,
            config.momentum
        );
        crate::outln!("{}", output::layer_table(&[&outcome.first, &outcome.last], &spec.activation.name()));
        crate::outln!("{}", output::styled_verdict(&output::evidence(&outcome.summary, &outcome.first)));
    };
    let Some((rows, dirs)) = run_setups(setups(a.steps.unwrap_or(3000), a.threads), &a.out, a, print_run)? else {
        return Ok(Status::Interrupted);
    };
    finish(&rows, &dirs, &a.out, a, false)?;
    let diverged = rows.iter().any(|(_, s, ..)| s.diverged);
    Ok(if diverged { Status::CheckFailed } else { Status::Ok })
}
