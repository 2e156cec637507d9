//! `gradscope bench`: milliseconds per training step on standard MLP shapes, comparable with
//! `bench/torch_mlp.py` (the same four configs in PyTorch, same output).
//!
//! A step is what the training loop does per batch: forward, MSE loss, backward (parameter
//! gradients of every layer, input gradients of every layer but the first, as autograd does)
//! and a plain SGD update (lr 0.01), in f32, on one fixed random batch.

use crate::nn::{Activation, Hook, Init, Loss, Mlp, MlpConfig, Targets, Threads};
use crate::optim::{Optimizer, OptimizerState, Sgd};
use crate::probe::GradientProbe;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::time::Instant;

/// One benchmark shape.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// Name: tiny, slide, deep, wide.
    pub name: &'static str,
    /// Input features.
    pub inputs: usize,
    /// Hidden width.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Outputs.
    pub outputs: usize,
    /// Batch size.
    pub batch: usize,
    /// Hidden activation.
    #[serde(serialize_with = "activation_name")]
    pub activation: Activation,
}

fn activation_name<S: serde::Serializer>(a: &Activation, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

/// The standard configs (issue #3's table; PyTorch's timings were taken on exactly these).
pub const CONFIGS: [BenchConfig; 4] = [
    BenchConfig {
        name: "tiny",
        inputs: 32,
        width: 32,
        depth: 10,
        outputs: 1,
        batch: 64,
        activation: Activation::Sigmoid,
    },
    BenchConfig {
        name: "slide",
        inputs: 784,
        width: 256,
        depth: 10,
        outputs: 10,
        batch: 128,
        activation: Activation::Sigmoid,
    },
    BenchConfig {
        name: "deep",
        inputs: 784,
        width: 128,
        depth: 50,
        outputs: 10,
        batch: 128,
        activation: Activation::Tanh,
    },
    BenchConfig {
        name: "wide",
        inputs: 784,
        width: 2048,
        depth: 4,
        outputs: 10,
        batch: 256,
        activation: Activation::Relu,
    },
];

impl BenchConfig {
    /// Layer sizes `[inputs, width…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        MlpConfig::uniform(self.inputs, self.width, self.depth, self.outputs, self.activation, Init::Pytorch).sizes
    }

    /// Floating-point operations of one step as issue #3 counts them: 2·m·k·n for each of the
    /// three products of every layer (forward, ∂L/∂W, ∂L/∂x). Neither gradscope nor PyTorch
    /// computes ∂L/∂x of the first layer, so this is a nominal count, the same for both.
    pub fn flops(&self) -> f64 {
        let b = self.batch as f64;
        self.sizes().windows(2).map(|w| 3.0 * 2.0 * b * (w[0] * w[1]) as f64).sum()
    }
}

/// Timings of one config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchResult {
    /// The config's name.
    pub config: &'static str,
    /// The shape.
    pub shape: BenchConfig,
    /// Threads used.
    pub threads: usize,
    /// Timed steps (after the warm-up).
    pub steps: usize,
    /// Probe period (0: no probing).
    pub probe_every: u64,
    /// Median milliseconds per step.
    pub median_ms: f64,
    /// Fastest step.
    pub min_ms: f64,
    /// Slowest step.
    pub max_ms: f64,
    /// FLOPs of one step.
    pub flops_per_step: f64,
    /// flops_per_step / median time, in GFLOP/s.
    pub gflops: f64,
    /// This machine's peak at this thread count ([`crate::peak::measure`]), in GFLOP/s; NaN
    /// (`null` in JSON) until the caller measures it.
    pub peak_gflops: f64,
    /// gflops / peak_gflops.
    pub fraction_of_peak: f64,
}

/// Times `steps` training steps of `cfg` after `warmup` untimed ones.
pub fn run(cfg: &BenchConfig, threads: usize, steps: usize, warmup: usize, probe_every: u64) -> BenchResult {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    pool.install(|| run_in_pool(cfg, threads, steps, warmup, probe_every))
}

fn run_in_pool(cfg: &BenchConfig, threads: usize, steps: usize, warmup: usize, probe_every: u64) -> BenchResult {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut mlp: Mlp<f32> =
        MlpConfig::uniform(cfg.inputs, cfg.width, cfg.depth, cfg.outputs, cfg.activation, Init::Pytorch).init(&mut rng);
    let x = Array2::from_shape_simple_fn((cfg.batch, cfg.inputs), || StandardNormal.sample(&mut rng));
    let y = Array2::from_shape_simple_fn((cfg.batch, cfg.outputs), || StandardNormal.sample(&mut rng));
    let mut opt = OptimizerState::new(Optimizer::Sgd(Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 }), &mlp);
    let mut probe = GradientProbe::new();
    let t = Threads::new(threads);
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let start = Instant::now();
        let probed = probe_every > 0 && (step as u64).is_multiple_of(probe_every);
        let attached: Option<&mut dyn Hook<f32>> = if probed { Some(&mut probe) } else { None };
        // the training loop's divergence check (loss and every gradient), so that its cost is timed
        let mut guard = crate::nonfinite::Guard::new(attached);
        let loss = mlp.loss_and_grads_probed(x.view(), Targets::Values(y.view()), Loss::Mse, t, Some(&mut guard));
        std::hint::black_box(loss.is_finite() && guard.finite);
        if probed {
            probe.after_backward(step as u64, 0, loss, &mlp);
        }
        if probed {
            opt.step_measured(&mut mlp, 0.01);
            probe.after_update(&opt.norms);
            std::hint::black_box(probe.take());
        } else {
            opt.step(&mut mlp, 0.01);
        }
        if step >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        0.5 * (times[times.len() / 2 - 1] + times[times.len() / 2])
    };
    let flops = cfg.flops();
    BenchResult {
        config: cfg.name,
        shape: *cfg,
        threads,
        steps,
        probe_every,
        median_ms: median,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        flops_per_step: flops,
        gflops: flops / (median * 1e-3) / 1e9,
        peak_gflops: f64::NAN,
        fraction_of_peak: f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_count_every_gemm() {
        // tiny: 32→32 ×10 →1, batch 64, three products per layer
        let want = 3.0 * 2.0 * 64.0 * (10.0 * 32.0 * 32.0 + 32.0);
        assert_eq!(CONFIGS[0].flops(), want);
        // issue #3: "the wide step is 21.8 GFLOP"
        let w = CONFIGS[3].flops();
        assert!((w / 1e9 - 21.8).abs() < 0.1, "{w}");
    }

    #[test]
    fn a_short_run_reports_sane_numbers() {
        let r = run(&CONFIGS[0], 1, 3, 1, 1);
        assert_eq!(r.steps, 3);
        assert!(r.min_ms > 0.0 && r.min_ms <= r.median_ms && r.median_ms <= r.max_ms && r.gflops > 0.0);
    }
}
