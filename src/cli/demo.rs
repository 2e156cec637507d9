//! `gradscope demo`: the lecture's argument, measured.
//!
//! Trains the sigmoid MLP h_l = σ(h_{l−1}·W_lᵀ + b_l) at depths 2, 5, 10 and 20 with PyTorch's
//! default init on the built-in regression set, then the 20-layer network again with
//! tanh + Xavier and with ReLU + He, all from the same seed and data, and prints each run's
//! per-layer gradient norms at step 0 and at the end.

use super::Status;
use super::args::DemoArgs;
use super::output::{self, sci};
use super::train::{RunOptions, run_config_with};
use crate::config::{Config, RunSpec};
use crate::train::Outcome;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use std::path::{Path, PathBuf};

/// What every demo run shares: the built-in regression set, 64 units, SGD (lr 0.01, momentum
/// 0.9, batch 64), `steps` steps probed 16 times, seed 0.
fn demo_base(steps: u64, threads: usize) -> Config {
    Config {
        data: "regression".into(),
        width: 64,
        loss: "mse".into(),
        optimizer: "sgd".into(),
        lr: Some(0.01),
        momentum: 0.9,
        batch_size: 64,
        steps: Some(steps),
        probe_every: (steps / 15).max(1),
        seed: 0,
        threads,
        ..Config::default()
    }
}

/// One demo run: a name (its folder) and its config.
pub fn setups(steps: u64, threads: usize) -> Vec<(String, Config)> {
    let base = demo_base(steps, threads);
    let mut v: Vec<(String, Config)> = [2, 5, 10, 20]
        .into_iter()
        .map(|d| {
            (
                format!("sigmoid-depth{d}"),
                Config { depth: d, activation: "sigmoid".into(), init: "pytorch".into(), ..base.clone() },
            )
        })
        .collect();
    v.push((
        "tanh-xavier-depth20".into(),
        Config { depth: 20, activation: "tanh".into(), init: "xavier_normal".into(), ..base.clone() },
    ));
    v.push((
        "relu-kaiming-depth20".into(),
        Config { depth: 20, activation: "relu".into(), init: "kaiming_normal".into(), ..base },
    ));
    v
}

/// Hidden layers of the remedies demo.
pub const REMEDIES_DEPTH: usize = 50;
/// α of the residual runs: with α = 1 the sigmoid's positive outputs pile up along the residual
/// stream and SGD diverges within ten steps; a small branch scale (as SkipInit and Fixup do)
/// keeps the stream near its input.
pub const REMEDIES_RESIDUAL_SCALE: f64 = 0.05;
/// σ_w² of the exploding network (ReLU's critical value is 2).
pub const EXPLODING_SIGMA_W2: f64 = 2.5;
/// clip_norm of the clipped runs.
pub const REMEDIES_CLIP_NORM: f64 = 1.0;

/// The runs of `gradscope demo --remedies`: for sigmoid and tanh at depth 50 (PyTorch's init),
/// plain, each remedy alone and all combined; then ReLU with gaussian σ_w² = 2.5 plain and
/// clipped. Same data, seed, batches and SGD for all.
pub fn remedies_setups(steps: u64, threads: usize) -> Vec<(String, Config)> {
    let base = Config { depth: REMEDIES_DEPTH, ..demo_base(steps, threads) };
    let residual = |c: Config| Config { residual: true, residual_scale: REMEDIES_RESIDUAL_SCALE, ..c };
    let mut v = Vec::new();
    for act in ["sigmoid", "tanh"] {
        let plain = Config { activation: act.into(), ..base.clone() };
        v.push((format!("{act}-plain"), plain.clone()));
        v.push((format!("{act}-residual"), residual(plain.clone())));
        v.push((format!("{act}-batchnorm"), Config { norm: "batch".into(), ..plain.clone() }));
        v.push((format!("{act}-layernorm"), Config { norm: "layer".into(), ..plain.clone() }));
        v.push((format!("{act}-clip"), Config { clip_norm: Some(REMEDIES_CLIP_NORM), ..plain.clone() }));
        v.push((
            format!("{act}-combined"),
            Config { norm: "batch".into(), clip_norm: Some(REMEDIES_CLIP_NORM), ..residual(plain) },
        ));
    }
    let exploding =
        Config { activation: "relu".into(), init: "gaussian".into(), sigma_w2: EXPLODING_SIGMA_W2, ..base.clone() };
    v.push(("relu-exploding".into(), exploding.clone()));
    v.push(("relu-exploding-clip".into(), Config { clip_norm: Some(REMEDIES_CLIP_NORM), ..exploding }));
    v
}

/// One finished demo run: its name, summary, loss at step 0 and verdict.
type Row = (String, crate::train::Summary, f64, String);

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
        let (spec, outcome) = run_config_with(&config, &dir, RunOptions { progress: !a.quiet, overwrite: true })?;
        if outcome.summary.status == crate::train::RunStatus::Interrupted {
            eprintln!("interrupted during {name}; its checkpoint is in {}", dir.display());
            return Ok(None);
        }
        each(&name, &config, &spec, &outcome);
        let verdict = crate::verdict::judge(&output::evidence(&outcome.summary, &outcome.first)).headline();
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
        crate::outln!("{}", crate::verdict::RULES);
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

/// Runs `gradscope demo`.
///
/// The demo owns its runs' folders: running it again replaces them (other files under --out are
/// left alone). Ctrl-C ends it after the current run's step, with exit 130.
pub fn run(a: &DemoArgs) -> anyhow::Result<Status> {
    super::install_signal_handlers()?;
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
        crate::outln!("{}", output::layer_table(&[&outcome.first, &outcome.last], spec.activation.name()));
        crate::outln!("{}", output::styled_verdict(&output::evidence(&outcome.summary, &outcome.first)));
    };
    let Some((rows, dirs)) = run_setups(setups(a.steps.unwrap_or(3000), a.threads), &a.out, a, print_run)? else {
        return Ok(Status::Interrupted);
    };
    finish(&rows, &dirs, &a.out, a, false)?;
    let diverged = rows.iter().any(|(_, s, ..)| s.diverged);
    Ok(if diverged { Status::CheckFailed } else { Status::Ok })
}
