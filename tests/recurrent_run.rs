//! Recurrent networks as runs (issue 14, part 2): trained through the same run layer as an MLP,
//! with records through time, summaries, PyTorch-named weights, checkpoints and the guard.

mod common;

use common::gradscope;
use gradscope::config::{CellKind, Config, GateBiasKind, HeadKind, RecurrentInit};
use gradscope::nn::{Loss, Network};
use gradscope::nonfinite::Part;
use gradscope::optim::OptimizerKind;
use gradscope::run::{self, Model, Silent};
use gradscope::{OnNonFinite, RunStatus};
use std::path::Path;

fn adding(cell: CellKind, seq_len: usize, steps: u64) -> Config {
    Config {
        cell,
        data: "adding".into(),
        seq_len: Some(seq_len),
        width: 16,
        optimizer: OptimizerKind::Adam,
        batch_size: 32,
        steps: Some(steps),
        probe_every: 20,
        threads: 1,
        seed: 3,
        ..Config::default()
    }
}

fn train(config: &Config) -> run::Outcome<f32> {
    let spec = config.resolve().unwrap();
    let data = run::load_data(&spec).unwrap();
    run::train::<f32>(&spec, &data, &mut Silent).unwrap()
}

/// Every cell trains from the CLI's config: the loss falls on the adding problem, every probed
/// record carries the record through time (one entry per layer, T steps), the layers are the
/// recurrent ones and the head, and the summary has the ratio through time at both ends.
#[test]
fn every_cell_trains_and_records_through_time() {
    for cell in [CellKind::RnnTanh, CellKind::RnnRelu, CellKind::Lstm, CellKind::Gru] {
        let config = Config { num_layers: Some(2), ..adding(cell, 8, 150) };
        let o = train(&config);
        let s = &o.summary;
        assert_eq!(s.status, RunStatus::Completed, "{cell:?}");
        assert!(s.train_loss < 0.8 * o.first.train_loss, "{cell:?}: {} → {}", o.first.train_loss, s.train_loss);
        for rec in [&o.first, &o.last] {
            let time = rec.time.as_ref().expect("a recurrent record has its time record");
            assert_eq!((time.seq_len, time.layers.len()), (8, 2), "{cell:?}");
            assert_eq!(rec.layers.len(), 3, "two recurrent layers and the head");
            assert!(rec.vanishing_ratio.is_finite() && rec.vanishing_ratio > 0.0);
            assert!(time.vanishing_ratio_time.is_finite() && time.vanishing_ratio_time > 0.0);
        }
        assert_eq!(s.vanishing_ratio_time, o.first.time.as_ref().map(|t| t.vanishing_ratio_time));
        assert_eq!(s.vanishing_ratio_time_final, o.last.time.as_ref().map(|t| t.vanishing_ratio_time));
        let net = o.model.as_recurrent().expect("a recurrent model");
        assert_eq!(net.layers.len(), 2);
    }
}

/// docs/recurrent.md: truncated BPTT with a last-step head cuts x_1 off the loss — the ratio
/// through time is exactly 0 and reads "vanishing" — while the ratio through depth stays finite;
/// full BPTT on the same network gives a positive ratio.
#[test]
fn truncated_bptt_with_a_last_step_head_gives_x1_no_gradient() {
    let base = Config { head: Some(HeadKind::Last), ..adding(CellKind::RnnTanh, 20, 20) };
    let cut = train(&Config { bptt: Some(5), ..base.clone() });
    let s = &cut.summary;
    assert_eq!((s.vanishing_ratio_time, s.vanishing_ratio_time_final), (Some(0.0), Some(0.0)));
    assert_eq!(gradscope::verdict::Flow::of(0.0).word(), "vanishing");
    assert!(cut.first.vanishing_ratio.is_finite() && cut.first.vanishing_ratio > 0.0);
    let full = train(&base);
    assert!(full.summary.vanishing_ratio_time.unwrap() > 0.0);
}

/// The head's record is the output layer's: its ‖∂L/∂W‖ is ‖∂L/∂fc.weight‖ measured directly,
/// and the first layer's is ‖∂L/∂rnn.weight_ih_l0‖ (the final probe makes no update).
#[test]
fn record_layers_are_the_input_weights_and_the_head() {
    let o = train(&adding(CellKind::Gru, 6, 30));
    let net = o.model.as_recurrent().unwrap();
    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
    let mut grads = std::collections::HashMap::new();
    net.visit(&mut |t| {
        grads.insert(t.name.to_string(), norm(t.grad.unwrap()));
    });
    let rel = |a: f64, b: f64| ((a - b) / b).abs();
    assert!(rel(o.last.layers[0].grad_w_norm, grads["rnn.weight_ih_l0"]) < 1e-9);
    assert!(rel(o.last.layers[1].grad_w_norm, grads["fc.weight"]) < 1e-9);
    assert!(o.last.layers[1].update_ratio.is_none());
}

/// The copy task: per-step class targets, the head on every step, accuracy over every step.
#[test]
fn the_copy_task_trains_with_a_head_on_every_step() {
    let config =
        Config { data: "copy".into(), loss: Loss::CrossEntropy, lr: Some(0.01), ..adding(CellKind::Lstm, 4, 120) };
    let o = train(&config);
    let acc = o.summary.test_accuracy.expect("classes give an accuracy");
    // 14 of the 24 steps are blanks: predicting blank everywhere is right 58% of the time
    assert!(acc > 0.5, "accuracy {acc}");
    assert!(o.summary.test_loss.unwrap() < o.first.train_loss);
}

/// Same seed and threads, same bits; the init keys change the network.
#[test]
fn recurrent_runs_are_reproducible_and_the_init_keys_apply() {
    let base = adding(CellKind::Lstm, 8, 40);
    let state = |o: &run::Outcome<f32>| -> Vec<(String, Vec<u32>)> {
        o.model.state().into_iter().map(|(n, _, v)| (n, v.iter().map(|x| x.to_bits()).collect())).collect()
    };
    let (a, b) = (train(&base), train(&base));
    assert_eq!(state(&a), state(&b));
    assert_eq!(a.summary.train_loss.to_bits(), b.summary.train_loss.to_bits());
    let names: Vec<String> = state(&a).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "fc.weight", "fc.bias"]
    );
    let forget = train(&Config {
        gate_bias: Some(GateBiasKind::Forget),
        forget_bias: Some(1.0),
        steps: Some(1),
        ..base.clone()
    });
    let Model::Recurrent(net) = &forget.model else { panic!("recurrent") };
    let h = 16;
    // b_f sums to 1 at step 0 (and Adam's first step moves each entry by at most lr)
    let sum: Vec<f32> = (h..2 * h).map(|j| net.layers[0].bias_ih[j] + net.layers[0].bias_hh[j]).collect();
    assert!(sum.iter().all(|&s| (s - 1.0).abs() < 0.003), "{sum:?}");
    let orth = train(&Config { recurrent_init: Some(RecurrentInit::Orthogonal), steps: Some(1), ..base });
    assert_ne!(state(&orth)[1], state(&a)[1]);
}

/// A NaN is caught and named by its PyTorch name; `skip` goes on without the update.
#[test]
fn nonfinite_recurrent_steps_stop_or_skip() {
    let mut config = adding(CellKind::RnnRelu, 8, 30);
    (config.lr, config.optimizer, config.recurrent_init) =
        (Some(1e30), OptimizerKind::Sgd, Some(RecurrentInit::Identity));
    let o = train(&config);
    assert_eq!(o.summary.status, RunStatus::Diverged);
    let at = o.summary.nonfinite.as_ref().expect("located");
    // weights and gradients are named by their PyTorch names; an overflowing output is the loss's
    let named = at.tensor.as_deref().is_some_and(|t| t.contains("rnn.") || t.contains("fc."));
    assert!(named || (at.part == Part::Loss && at.tensor.is_none()), "{at:?}");
    let o = train(&Config { on_nonfinite: OnNonFinite::Skip, ..config });
    assert_eq!(o.summary.status, RunStatus::Completed);
    assert!(o.summary.skipped_steps > 0);
}

fn metrics_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// From the CLI: flags, config.toml keeps the recurrent keys, metrics.jsonl lines carry `time`,
/// weights.safetensors reads back under PyTorch's names, and the summary line judges the ratio
/// through time.
#[test]
fn the_cli_trains_a_recurrent_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lstm");
    let assert = gradscope()
        .args(["train", "--cell", "lstm", "--data", "adding", "--seq-len", "10", "--width", "12"])
        .args(["--optimizer", "adam", "--steps", "40", "--probe-every", "20", "--threads", "1", "--bptt", "4"])
        .args(["--no-report", "--out"])
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("through time: ‖∂L/∂x_1‖/‖∂L/∂x_T‖ = "), "{stdout}");
    assert!(stdout.contains("(lstm)"), "{stdout}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    for key in ["cell = \"lstm\"", "seq_len = 10", "bptt = 4"] {
        assert!(config.contains(key), "{config}");
    }
    let lines = metrics_lines(&out);
    assert_eq!(lines.len(), 3, "steps 0, 20 and the final probe");
    for l in &lines {
        assert_eq!(l["time"]["seq_len"], 10);
        assert_eq!(l["time"]["bptt"], 4);
        assert_eq!(l["time"]["layers"][0]["grad_h"].as_array().unwrap().len(), 10);
    }
    let bytes = std::fs::read(out.join("weights.safetensors")).unwrap();
    let net = gradscope::io::recurrent::from_safetensors::<f64>(
        &bytes,
        &out,
        gradscope::nn::recurrent::Head::Last,
        gradscope::nn::recurrent::Cell::RnnTanh,
    )
    .unwrap();
    assert_eq!(net.cell, gradscope::nn::recurrent::Cell::Lstm);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["vanishing_ratio_time"].as_f64().is_some());
    // an MLP's files have no trace of the recurrent keys
    let mlp = tmp.path().join("mlp");
    gradscope().args(["train", "--steps", "3", "--quiet", "--no-report", "--out"]).arg(&mlp).assert().success();
    assert!(!std::fs::read_to_string(mlp.join("config.toml")).unwrap().contains("cell"));
    assert!(metrics_lines(&mlp).iter().all(|l| l.get("time").is_none()));
}

/// A sweep over recurrent keys: every point runs, in its own folder.
#[test]
fn sweeps_take_recurrent_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("SWEEP.toml");
    std::fs::write(
        &sweep,
        "[base]\ndata = \"adding\"\nwidth = 8\nsteps = 10\nprobe_every = 5\nthreads = 1\noptimizer = \"adam\"\n\
         [grid]\ncell = [\"rnn_tanh\", \"lstm\"]\nseq_len = [5, 9]\n",
    )
    .unwrap();
    let out = tmp.path().join("sweep");
    gradscope()
        .args(["sweep", "--config"])
        .arg(&sweep)
        .args(["--jobs", "2", "--keep-metrics", "--quiet", "--out"])
        .arg(&out)
        .assert()
        .success();
    let runs: Vec<_> = std::fs::read_dir(out.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 4);
    for r in runs {
        let dir = r.unwrap().path();
        assert!(dir.join("summary.json").is_file(), "{}", dir.display());
        assert!(metrics_lines(&dir)[0].get("time").is_some());
    }
}
