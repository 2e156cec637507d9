//! gradscope as a library, public API only: train a deep sigmoid network on the built-in
//! spirals step by step with a [`Trainer`], then the same config into a run folder with
//! [`run::train_into`] (probe records streamed to `metrics.jsonl`), and write the report.
//!
//! `cargo run --release --example library [OUT]` (OUT defaults to a folder under the system's
//! temporary directory).

use gradscope::nn::{ActivationKind, Loss};
use gradscope::run::{self, Mode, Observer, Trainer};
use gradscope::{Config, StepRecord};
use std::path::{Path, PathBuf};

/// Prints each probed step as it is recorded.
struct Print;

impl Observer for Print {
    fn on_record(&mut self, r: &StepRecord) -> gradscope::Result<()> {
        let first = r.layers.first().map_or(f64::NAN, |l| l.grad_w_norm);
        println!(
            "  step {:>3}  loss {:.4}  ‖∂L/∂W₁‖ {first:.2e}  first/last {:.2e}",
            r.step, r.train_loss, r.vanishing_ratio
        );
        Ok(())
    }
}

fn main() -> gradscope::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map_or_else(|| std::env::temp_dir().join("gradscope-library-example"), PathBuf::from);
    let html = example(&out)?;
    println!("report: {}", html.display());
    Ok(())
}

/// The example, writing under `out`; returns the report's path (`tests/example.rs` runs it).
pub fn example(out: &Path) -> gradscope::Result<PathBuf> {
    let config = Config {
        data: "spirals".into(),
        loss: Loss::CrossEntropy,
        depth: 8,
        width: 32,
        activation: ActivationKind::Sigmoid,
        steps: Some(200),
        probe_every: 50,
        threads: 1,
        ..Config::default()
    };

    // 1. The loop in your hands: one step at a time, probes at step 0 and every 50 steps.
    let spec = config.resolve()?;
    let data = run::load_data(&spec)?;
    let mut trainer = Trainer::<f32>::new(&spec, &data)?;
    println!("Trainer, {} steps:", trainer.total_steps());
    while !trainer.is_done() {
        if let Some(r) = trainer.step()?.record {
            Print.on_record(&r)?;
        }
    }
    let last = trainer.final_probe().expect("a completed run ends with a probe");
    Print.on_record(&last)?;
    let (test_loss, accuracy) = trainer.evaluate(&data.test);
    println!("  test loss {test_loss:.4}, accuracy {:.1}%", 100.0 * accuracy.unwrap_or(f64::NAN));

    // 2. The same run into a folder, then its report.
    let dir = out.join("sigmoid-depth8");
    println!("train_into {}:", dir.display());
    let (_, outcome) = run::train_into(&config, &dir, Mode::Overwrite, &mut Print)?;
    assert_eq!(outcome.summary.steps, 200);
    println!("vanishing ratio at step 0: {:.2e}", outcome.summary.vanishing_ratio);
    run::write_report(&[dir], out, "cargo run --example library".into())
}
