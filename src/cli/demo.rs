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
use crate::config::Config;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

/// One demo run: a name (its folder) and its config.
pub fn setups(steps: u64, threads: usize) -> Vec<(String, Config)> {
    let base = Config {
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
    };
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

/// Runs `gradscope demo`.
///
/// The demo owns its runs' folders: running it again replaces them (other files under --out are
/// left alone). Ctrl-C ends it after the current run's step, with exit 130.
pub fn run(a: &DemoArgs) -> anyhow::Result<Status> {
    super::install_signal_handlers()?;
    let mut rows = Vec::new();
    let mut dirs = Vec::new();
    for (name, config) in setups(a.steps, a.threads) {
        let dir = a.out.join(&name);
        dirs.push(dir.clone());
        let (spec, outcome) = run_config_with(&config, &dir, RunOptions { progress: !a.quiet, overwrite: true })?;
        let s = &outcome.summary;
        if s.status == crate::train::RunStatus::Interrupted {
            eprintln!("interrupted during {name}; its checkpoint is in {}", dir.display());
            return Ok(Status::Interrupted);
        }
        if !a.quiet {
            println!(
                "\n{name}: {} hidden layers of {} {} units, {} init, {} steps of SGD (lr {}, momentum {})",
                spec.depth,
                spec.width,
                spec.activation.name(),
                spec.init.name(),
                s.steps,
                spec.lr,
                config.momentum
            );
            println!("{}", output::layer_table(&[&outcome.first, &outcome.last], spec.activation.name()));
            anstream::println!("{}", output::styled_verdict(outcome.first.vanishing_ratio, outcome.first.layers.len()));
        }
        rows.push((name, s.clone(), outcome.first.train_loss));
    }
    if !a.quiet {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "run",
            "vanishing ratio step 0",
            "vanishing ratio end",
            "loss step 0",
            "train loss end",
            "test loss end",
        ]);
        for (name, s, loss0) in &rows {
            t.add_row(vec![
                name.clone(),
                sci(s.vanishing_ratio),
                sci(s.vanishing_ratio_final),
                sci(*loss0),
                sci(s.train_loss),
                s.test_loss.map_or("-".into(), sci),
            ]);
        }
        println!("\nvanishing ratio = ‖∂L/∂W‖ of the first layer / that of the output layer\n{t}");
        println!("runs written under {}", a.out.display());
    }
    if !a.no_report {
        let html = super::report::make(&dirs, &a.out)?;
        if !a.quiet {
            println!("report: {}", html.display());
        }
    }
    let diverged = rows.iter().any(|(_, s, _)| s.diverged);
    Ok(if diverged { Status::CheckFailed } else { Status::Ok })
}
