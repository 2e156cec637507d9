//! The remedies in training: probes still only observe, batch norm's running estimates and
//! eval mode, clipping in the metrics, the deep sigmoid network that trains only with a remedy,
//! the exploding network that trains only clipped, and bad remedy settings refused.

mod common;

use gradscope::config::Config;
use gradscope::data::{self, LoadOptions};
use gradscope::nn::{ActivationKind, Network, NormChoice, NormPosition, Threads};
use gradscope::probe::StepRecord;
use gradscope::run::{Observer, Silent, evaluate, train};

struct Records(Vec<StepRecord>);
impl Observer for Records {
    fn on_record(&mut self, r: &StepRecord) -> gradscope::Result<()> {
        self.0.push(r.clone());
        Ok(())
    }
}

fn data(config: &Config) -> data::Dataset {
    let spec = config.resolve().unwrap();
    let opts =
        LoadOptions { target: None, classes: false, seed: spec.seed, test_fraction: 0.2, ..LoadOptions::default() };
    data::load(&spec.data, &opts).unwrap()
}

fn run(config: &Config, observer: &mut (dyn Observer + Send)) -> gradscope::run::Outcome<f32> {
    train::<f32>(&config.resolve().unwrap(), &data(config), observer).unwrap()
}

/// Every state tensor (parameters and batch norm's running estimates), flattened.
fn state(o: &gradscope::run::Outcome<f32>) -> Vec<(String, Vec<f32>)> {
    o.model.state().into_iter().map(|(n, _, v)| (n, v.to_vec())).collect()
}

fn remedied() -> Config {
    Config {
        depth: 5,
        width: 24,
        activation: ActivationKind::Tanh,
        residual: true,
        residual_scale: 0.5,
        norm: NormChoice::Batch,
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
    for norm_position in [NormPosition::Pre, NormPosition::Post] {
        let base = Config { norm_position, ..remedied() };
        let a = run(&base, &mut Silent);
        assert_eq!(state(&a), state(&run(&base, &mut Silent)), "same seed, same numbers");
        let mut recs = Records(Vec::new());
        let probed = run(&Config { probe_every: 1, ..base.clone() }, &mut recs);
        assert_eq!(state(&a), state(&probed), "{norm_position:?}: probing changed the network");
        // the running estimates moved, once per training step, and not at the final probe
        let names: Vec<String> = state(&a).into_iter().map(|(n, _)| n).collect();
        assert!(
            names.contains(&"shortcuts.0.weight".to_string()) && names.contains(&"norms.4.running_var".to_string())
        );
        assert_eq!(a.model.as_mlp().unwrap().norms[0].num_batches_tracked[0], 40.0);
        assert!(a.model.as_mlp().unwrap().norms[2].running_mean.iter().any(|&m| m != 0.0));
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
    let (loss, _) = evaluate(o.model.as_mlp_mut().unwrap(), &d.test, spec.loss, chunk, Threads::One);
    assert!(o.model.as_mlp().unwrap().is_training());
    assert_eq!(loss.to_bits(), o.summary.test_loss.unwrap().to_bits());
    // by hand: eval mode, one forward pass over the whole test split
    let x = d.test.x.clone();
    let y = match &d.test.y {
        data::Labels::Values(v) => v.clone(),
        _ => unreachable!(),
    };
    let mut eval = o.model.as_mlp().unwrap().clone();
    eval.set_training(false);
    let out = eval.forward(x.view(), Threads::One).to_owned();
    let mse = (&out - &y).mapv(|e| (e as f64) * (e as f64)).mean().unwrap();
    assert!((mse - loss).abs() < 1e-5 * loss, "{mse} vs {loss}");
    // training mode (batch statistics of the whole split) gives another number
    let mut batch = o.model.as_mlp().unwrap().clone();
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
    let runs = gradscope::demo::remedies_setups(steps, 1);
    let get = |name: &str| runs.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let plain = run(&get("sigmoid-plain"), &mut Silent).summary;
    let residual = run(&get("sigmoid-residual"), &mut Silent).summary;
    let batch = run(&get("sigmoid-batchnorm"), &mut Silent).summary;
    assert!(plain.vanishing_ratio < 1e-20, "plain: {}", plain.vanishing_ratio);
    assert!(residual.vanishing_ratio > 1e-6 && batch.vanishing_ratio > 1e-3);
    assert!(!plain.diverged && !residual.diverged && !batch.diverged);
    assert!(residual.train_loss < 0.8 * plain.train_loss, "{} vs {}", residual.train_loss, plain.train_loss);
    assert!(batch.train_loss < 0.5 * plain.train_loss, "{} vs {}", batch.train_loss, plain.train_loss);
    // layer norm does not rescue it; residual with α = 1 diverges with sigmoid, trains with tanh
    let layer = run(&get("sigmoid-layernorm"), &mut Silent).summary;
    assert!(layer.vanishing_ratio < 1e-15 && layer.train_loss > 0.9 * plain.train_loss, "{layer:?}");
    let alpha1 = run(&Config { residual_scale: 1.0, ..get("sigmoid-residual") }, &mut Silent).summary;
    assert!(alpha1.diverged_at_step.is_some_and(|s| s < 10), "{alpha1:?}");
    let tanh_plain = run(&get("tanh-plain"), &mut Silent).summary;
    let tanh_alpha1 = run(&Config { residual_scale: 1.0, ..get("tanh-residual") }, &mut Silent).summary;
    assert!(tanh_alpha1.train_loss < 0.2 * tanh_plain.train_loss, "{tanh_alpha1:?}");
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
    let bad_toml = |text: &str, key: &str| {
        let e = Config::from_toml(text, "test.toml").unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    };
    bad_toml("norm = \"btach\"", "unknown norm 'btach' (did you mean 'batch'?); valid: none, batch, layer");
    bad_toml("norm_position = \"middle\"", "unknown norm_position 'middle'; valid: pre, post");
    bad(Config { residual: true, residual_block: 3, ..Config::default() }, "residual_block");
    bad(Config { residual_scale: f64::NAN, ..Config::default() }, "residual_scale");
    bad(Config { clip_norm: Some(0.0), ..Config::default() }, "clip_norm");
    bad(Config { clip_value: Some(-1.0), ..Config::default() }, "clip_value");
    bad(Config { clip_norm: Some(1.0), clip_value: Some(1.0), ..Config::default() }, "not both");
    bad(Config { norm: NormChoice::Batch, batch_size: 1, ..Config::default() }, "batch_size");
    // a last batch of one row: refused before training, as PyTorch would fail on it
    let c = Config { norm: NormChoice::Batch, batch_size: 7, ..Config::default() };
    let d = data(&c);
    let c = Config { batch_size: d.train.len() - 1, ..c };
    let e = train::<f32>(&c.resolve().unwrap(), &d, &mut Silent).err().expect("refused").to_string();
    assert!(e.contains("batch_size") && e.contains("batch norm"), "{e}");
    // the new keys round-trip through config.toml
    let c = Config {
        residual: true,
        norm: NormChoice::Layer,
        norm_position: NormPosition::Post,
        clip_value: Some(2.0),
        ..Config::default()
    };
    let r = c.resolved(&c.resolve().unwrap());
    assert_eq!(Config::from_toml(&r.to_toml(), "test").unwrap(), r);
}

/// weights.safetensors of a network with remedies: PyTorch's names and dtypes (the batch count
/// in int64, 0-dimensional), the architecture in the metadata; `probe --weights` rebuilds the
/// network from it alone and writes every gradient, and refuses a file that does not fit.
#[test]
fn weights_with_remedies_save_load_and_probe() {
    use safetensors::{Dtype, SafeTensors};
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let common = ["--depth", "3", "--width", "8", "--norm", "batch", "--residual", "--residual-block", "1"];
    common::gradscope()
        .args(["train", "--quiet", "--no-report", "--steps", "5", "--threads", "1", "--out"])
        .arg(&a)
        .args(common)
        .assert()
        .success();
    let bytes = std::fs::read(a.join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let nbt = st.tensor("norms.2.num_batches_tracked").unwrap();
    assert_eq!((nbt.dtype(), nbt.shape()), (Dtype::I64, &[][..]));
    assert_eq!(i64::from_le_bytes(nbt.data().try_into().unwrap()), 5);
    for name in ["norms.0.weight", "norms.0.bias", "norms.0.running_mean", "norms.0.running_var", "shortcuts.0.weight"]
    {
        assert_eq!(st.tensor(name).unwrap().dtype(), Dtype::F32, "{name}");
    }
    assert!(st.tensor("shortcuts.1.weight").is_err(), "blocks of equal width have no projection");
    // loaded back, the network is the same, buffers included
    let w = gradscope::io::weights::load(&a.join("weights.safetensors")).unwrap();
    let arch = w.arch.expect("recorded");
    let mlp = w.to_mlp_with::<f32>(gradscope::nn::Activation::Sigmoid, arch, &a).unwrap();
    let again = gradscope::io::weights::mlp_to_bytes(&mlp);
    assert_eq!(again, bytes, "load then save gives the same bytes");
    // probe reads it (architecture from the metadata) and writes every gradient
    let p = tmp.path().join("p");
    common::gradscope()
        .args(["probe", "--batch-size", "32", "--depth", "3", "--width", "8", "--out"])
        .arg(&p)
        .arg("--weights")
        .arg(a.join("weights.safetensors"))
        .assert()
        .success();
    let grads = std::fs::read(p.join("grads.safetensors")).unwrap();
    let gs = SafeTensors::deserialize(&grads).unwrap();
    for name in ["layers.3.weight", "norms.1.weight", "norms.1.bias", "shortcuts.0.weight", "shortcuts.0.bias"] {
        assert!(gs.tensor(name).is_ok(), "{name} missing from {:?}", gs.names());
    }
    assert!(gs.tensor("norms.1.running_mean").is_err(), "buffers have no gradient");
    let probe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("probe.json")).unwrap()).unwrap();
    assert!(probe["layers"][0]["norm_grad_w_norm"].as_f64().is_some_and(|g| g > 0.0));
    assert!(probe["layers"][3]["norm_grad_w_norm"].is_null());
    // flags that contradict the file: a clear error, exit 2
    let out = common::gradscope()
        .args(["probe", "--norm", "none", "--out"])
        .arg(tmp.path().join("q"))
        .arg("--weights")
        .arg(a.join("weights.safetensors"))
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("norms.0") && err.contains("--norm"), "{err}");
    assert!(!tmp.path().join("q").exists());
}
