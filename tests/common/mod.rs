//! What the integration tests share: the binary under test and where the data lives.
// Each test crate compiles this module and uses part of it.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::PathBuf;

/// The `gradscope` binary built by cargo for these tests.
pub fn gradscope() -> Command {
    Command::cargo_bin("gradscope").expect("cargo builds the gradscope binary for integration tests")
}

/// The one rule by which tests (and docs/data.md) find MNIST: `$GRADSCOPE_MNIST_DIR` if set,
/// else `../shared/data/mnist` beside the repository, else the cache folder that
/// `gradscope data mnist` fills (`$GRADSCOPE_DATA/mnist` or the platform's cache folder). No
/// test downloads anything.
pub fn mnist_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRADSCOPE_MNIST_DIR") {
        return dir.into();
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if shared.is_dir() {
        return shared;
    }
    gradscope::data::download::cache_dir("mnist").unwrap_or(shared)
}

/// Writes a recurrent run folder from the library, as the CLI will once it trains recurrent
/// networks: `config.toml`, `metrics.jsonl` (one `StepRecord` per probed step, with its
/// per-time-step record `time`) and `summary.json`. The network (`cell`, hidden 16, one layer,
/// a Linear head on the last step) learns the adding problem of `seq_len` steps with Adam
/// (lr 1e-2, batch 32) for `steps` steps, probed every `probe_every` steps and at the last.
pub fn write_recurrent_run(
    dir: &std::path::Path,
    cell: gradscope::nn::recurrent::Cell,
    seq_len: usize,
    steps: u64,
    probe_every: u64,
) {
    use gradscope::data::Labels;
    use gradscope::nn::recurrent::RecurrentConfig;
    use gradscope::nn::{Loss, Network, Targets, Threads};
    use gradscope::optim::{Adam, AdamState};
    use gradscope::{Config, StepRecord, Summary};
    use ndarray::s;
    use rand::SeedableRng;

    let batch = 32;
    let data = gradscope::data::sequence::adding(seq_len, 256, 32, 0).unwrap();
    let Labels::Values(y) = &data.train.y else { unreachable!("the adding problem has values") };
    let mut net =
        RecurrentConfig::new(cell, 2, 16, 1, 1).init::<f32, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
    let adam = Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false };
    let mut states: Vec<AdamState<f32>> = Vec::new();
    net.for_each_param(|_, _, v, _| states.push(AdamState::new(v.len())));
    let mut lines = String::new();
    let (mut last, mut first_ratio) = (None, f64::NAN);
    for step in 0..=steps {
        let at = (step as usize * batch) % (data.train.len() - batch + 1);
        let x = data.train.x.slice(s![.., at..at + batch, ..]).to_owned();
        let t = y.slice(s![at..at + batch, ..]).to_owned();
        net.zero_grad();
        net.probing = step % probe_every == 0 || step == steps;
        let loss = net.loss_and_grads(x.view(), Targets::Values(t.view()), Loss::Mse, Threads::One);
        if net.probing {
            let mut rec = StepRecord::new(step, 0, loss, Vec::new());
            rec.time = Some(net.time_record());
            rec.vanishing_ratio = rec.time.as_ref().unwrap().vanishing_ratio_time;
            lines.push_str(&serde_json::to_string(&rec).unwrap());
            lines.push('\n');
            if step == 0 {
                first_ratio = rec.vanishing_ratio;
            }
            last = Some(rec);
        }
        if step < steps {
            let mut k = 0;
            net.for_each_param(|_, _, v, g| {
                adam.step(1e-2, v, g, &mut states[k], false);
                k += 1;
            });
        }
    }
    let last = last.unwrap();
    let config =
        Config { data: format!("adding:{seq_len}"), depth: 1, width: 16, steps: Some(steps), ..Config::default() };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.toml"), config.to_toml()).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
    let summary = Summary {
        gradscope_version: env!("CARGO_PKG_VERSION").into(),
        data: config.data.clone(),
        seed: 0,
        threads: 1,
        steps,
        epochs: 1,
        train_loss: last.train_loss,
        test_loss: None,
        train_accuracy: None,
        test_accuracy: None,
        vanishing_ratio: first_ratio,
        vanishing_ratio_final: last.vanishing_ratio,
        vanishing_ratio_time: Some(first_ratio),
        vanishing_ratio_time_final: Some(last.vanishing_ratio),
        diverged: false,
        diverged_at_step: None,
        wall_time_s: 0.1,
        clipped_steps: 0,
        status: Default::default(),
        nonfinite: None,
        skipped_steps: 0,
    };
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).unwrap()).unwrap();
}
/// What to say when MNIST is not where [`mnist_dir`] looked.
pub const MNIST_HINT: &str = "MNIST not found: set GRADSCOPE_MNIST_DIR=DIR, put it in ../shared/data/mnist, \
                              or run `gradscope data mnist` (docs/data.md)";
