//! The remedies in training: probes still only observe, batch norm's running estimates and
//! eval mode, clipping in the metrics, the deep sigmoid network that trains only with a remedy,
//! the exploding network that trains only clipped, and bad remedy settings refused.

use gradscope::config::Config;
use gradscope::data::{self, LoadOptions};
use gradscope::nn::Threads;
use gradscope::probe::StepRecord;
use gradscope::train::{Observer, Silent, evaluate, train};

struct Records(Vec<StepRecord>);
impl Observer for Records {
    fn on_record(&mut self, r: &StepRecord) -> gradscope::Result<()> {
        self.0.push(r.clone());
        Ok(())
    }
}

fn data(config: &Config) -> data::Dataset {
    let spec = config.resolve().unwrap();
    let opts = LoadOptions { target: None, classes: false, seed: spec.seed, test_fraction: 0.2 };
    data::load(&spec.data, &opts).unwrap()
}

fn run(config: &Config, observer: &mut (dyn Observer + Send)) -> gradscope::train::Outcome<f32> {
    train::<f32>(&config.resolve().unwrap(), &data(config), observer).unwrap()
}

/// Every state tensor (parameters and batch norm's running estimates), flattened.
fn state(o: &gradscope::train::Outcome<f32>) -> Vec<(String, Vec<f32>)> {
    o.mlp.state().into_iter().map(|(n, _, v)| (n, v.to_vec())).collect()
}

fn remedied() -> Config {
    Config {
        depth: 5,
        width: 24,
        activation: "tanh".into(),
        residual: true,
        residual_scale: 0.5,
        norm: "batch".into(),
        clip_norm: Some(0.5),
        momentum: 0.9,
        steps: Some(40),
        probe_every: 0,
        threads: 1,
        ..Config::default()
    }
}

#[test]
fn probes_only_observe_with_every_remedy() {
    for norm_position in ["pre", "post"] {
        let base = Config { norm_position: norm_position.into(), ..remedied() };
        let a = run(&base, &mut Silent);
        assert_eq!(state(&a), state(&run(&base, &mut Silent)), "same seed, same numbers");
        let mut recs = Records(Vec::new());
        let probed = run(&Config { probe_every: 1, ..base.clone() }, &mut recs);
        assert_eq!(state(&a), state(&probed), "{norm_position}: probing changed the network");
        // the running estimates moved, once per training step, and not at the final probe
        let names: Vec<String> = state(&a).into_iter().map(|(n, _)| n).collect();
        assert!(
            names.contains(&"shortcuts.0.weight".to_string()) && names.contains(&"norms.4.running_var".to_string())
        );
        assert_eq!(a.mlp.norms[0].num_batches_tracked[0], 40.0);
        assert!(a.mlp.norms[2].running_mean.iter().any(|&m| m != 0.0));
        // every record carries the clipping figures and the norm layers' gradient norms
        assert_eq!(recs.0.len(), 41);
        for r in &recs.0[..40] {
            assert!(r.grad_norm.is_some_and(|g| g > 0.0) && r.clipped.is_some());
            assert!(r.layers[..5].iter().all(|l| l.norm_grad_w_norm.is_some_and(|g| g > 0.0)));
            assert!(r.layers[5].norm_grad_w_norm.is_none(), "the output layer has no norm");
        }
        assert!(recs.0[0].layers[0].shortcut_grad_w_norm.is_some_and(|g| g > 0.0));
        let clipped = recs.0[..40].iter().filter(|r| r.clipped == Some(true)).count() as u64;
        assert_eq!(clipped, a.summary.clipped_steps, "every step is probed here");
        assert!(clipped > 0);
        // the record's per-layer gradient norms are those before clipping: above the limit
        let g0 = &recs.0[0];
        let total: f64 = g0.grad_norm.unwrap();
        assert!(g0.clipped == Some(total > 0.5));
        let line = serde_json::to_string(g0).unwrap();
        assert!(line.contains("\"norm_grad_w_norm\":") && line.contains("\"grad_norm\":"), "{line}");
    }
}

/// `evaluate` runs batch norm in eval mode (the running estimates) and leaves the mode as it was.
#[test]
fn evaluation_uses_the_running_estimates() {
    let config = Config { clip_norm: None, residual: false, ..remedied() };
    let spec = config.resolve().unwrap();
    let d = data(&config);
    let mut o = train::<f32>(&spec, &d, &mut Silent).unwrap();
    let chunk = spec.batch_size.max(256); // as train evaluates
    let (loss, _) = evaluate(&mut o.mlp, &d.test, spec.loss, chunk, Threads::One);
    assert!(o.mlp.is_training());
    assert_eq!(loss.to_bits(), o.summary.test_loss.unwrap().to_bits());
    // by hand: eval mode, one forward pass over the whole test split
    let x = d.test.x.mapv(|v| v as f32);
    let y = match &d.test.y {
        data::Labels::Values(v) => v.mapv(|v| v as f32),
        _ => unreachable!(),
    };
    let mut eval = o.mlp.clone();
    eval.set_training(false);
    let out = eval.forward(x.view(), Threads::One).to_owned();
    let mse = (&out - &y).mapv(|e| (e as f64) * (e as f64)).mean().unwrap();
    assert!((mse - loss).abs() < 1e-5 * loss, "{mse} vs {loss}");
    // training mode (batch statistics of the whole split) gives another number
    let mut batch = o.mlp.clone();
    batch.set_track_running_stats(false);
    let out = batch.forward(x.view(), Threads::One).to_owned();
    let mse_batch = (&out - &y).mapv(|e| (e as f64) * (e as f64)).mean().unwrap();
    assert!((mse_batch - loss).abs() > 1e-6 * loss);
}

/// The claim of the README: at depth 50 with sigmoid, SGD does not move the plain network's loss
/// below the target's variance, while residual connections and batch norm train it; and a
/// ReLU network with σ_w² = 2.5 diverges unclipped and trains with clip_norm.
#[test]
fn deep_sigmoid_trains_only_with_a_remedy_and_exploding_relu_only_clipped() {
    let steps = 600;
    let runs = gradscope::cli::demo::remedies_setups(steps, 1);
    let get = |name: &str| runs.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let plain = run(&get("sigmoid-plain"), &mut Silent).summary;
    let residual = run(&get("sigmoid-residual"), &mut Silent).summary;
    let batch = run(&get("sigmoid-batchnorm"), &mut Silent).summary;
    assert!(plain.vanishing_ratio < 1e-20, "plain: {}", plain.vanishing_ratio);
    assert!(residual.vanishing_ratio > 1e-6 && batch.vanishing_ratio > 1e-3);
    assert!(!plain.diverged && !residual.diverged && !batch.diverged);
    assert!(residual.train_loss < 0.8 * plain.train_loss, "{} vs {}", residual.train_loss, plain.train_loss);
    assert!(batch.train_loss < 0.5 * plain.train_loss, "{} vs {}", batch.train_loss, plain.train_loss);
    let exploding = run(&get("relu-exploding"), &mut Silent).summary;
    let clipped = run(&get("relu-exploding-clip"), &mut Silent).summary;
    assert!(exploding.diverged, "{exploding:?}");
    assert!(!clipped.diverged && clipped.clipped_steps > 0 && clipped.train_loss < 1.0, "{clipped:?}");
}

#[test]
fn bad_remedy_settings_are_refused() {
    let bad = |c: Config, key: &str| {
        let e = c.resolve().unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    };
    bad(Config { norm: "btach".into(), ..Config::default() }, "did you mean 'batch'");
    bad(Config { norm_position: "middle".into(), ..Config::default() }, "norm_position");
    bad(Config { residual: true, residual_block: 3, ..Config::default() }, "residual_block");
    bad(Config { residual_scale: f64::NAN, ..Config::default() }, "residual_scale");
    bad(Config { clip_norm: Some(0.0), ..Config::default() }, "clip_norm");
    bad(Config { clip_value: Some(-1.0), ..Config::default() }, "clip_value");
    bad(Config { clip_norm: Some(1.0), clip_value: Some(1.0), ..Config::default() }, "not both");
    bad(Config { norm: "batch".into(), batch_size: 1, ..Config::default() }, "batch_size");
    // a last batch of one row: refused before training, as PyTorch would fail on it
    let c = Config { norm: "batch".into(), batch_size: 7, ..Config::default() };
    let d = data(&c);
    let c = Config { batch_size: d.train.len() - 1, ..c };
    let e = train::<f32>(&c.resolve().unwrap(), &d, &mut Silent).err().expect("refused").to_string();
    assert!(e.contains("batch_size") && e.contains("batch norm"), "{e}");
    // the new keys round-trip through config.toml
    let c = Config {
        residual: true,
        norm: "layer".into(),
        norm_position: "post".into(),
        clip_value: Some(2.0),
        ..Config::default()
    };
    let r = c.resolved(&c.resolve().unwrap());
    assert_eq!(Config::from_toml(&r.to_toml(), "test").unwrap(), r);
}
