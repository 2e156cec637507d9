//! `gradscope bench`: milliseconds per training step on standard MLP shapes, comparable with
//! `bench/torch_mlp.py` (the same four configs in PyTorch, same output), and on recurrent
//! shapes, comparable with `bench/torch_rnn.py`.
//!
//! A step is what the training loop does per batch: forward, MSE loss, backward (parameter
//! gradients of every layer, input gradients of every layer but the first, as autograd does)
//! and a plain SGD update (lr 0.01), in f32, on one fixed random batch. The recurrent configs
//! (row-by-row MNIST's shape: 28 steps of 28 features, hidden 128, batch 128, one layer, a Linear
//! head on the last step, 10 classes) take cross-entropy instead of MSE, and backpropagate
//! through time without ∂L/∂x (the sequence is data, as in PyTorch).

use crate::nn::recurrent::{Cell, RecurrentConfig};
use crate::nn::{Activation, Hook, Init, Loss, Mlp, MlpConfig, Network, Targets, Threads};
use crate::optim::{Optimizer, OptimizerState, Sgd, SgdState};
use crate::probe::GradientProbe;
use ndarray::{Array2, Array3};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::time::Instant;

/// One benchmark shape.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BenchConfig {
    /// Name: tiny, slide, deep, wide; lstm, rnn, gru.
    pub name: &'static str,
    /// Input features (per time step for the recurrent configs).
    pub inputs: usize,
    /// Hidden width (the recurrent configs: H, the hidden state's size).
    pub width: usize,
    /// Hidden layers (the recurrent configs: stacked recurrent layers).
    pub depth: usize,
    /// Outputs.
    pub outputs: usize,
    /// Batch size.
    pub batch: usize,
    /// Hidden activation (the recurrent configs: the cell's tanh).
    #[serde(serialize_with = "activation_name")]
    pub activation: Activation,
    /// A recurrent network instead of an MLP (absent from the MLP configs' JSON).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub recurrent: Option<Sequence>,
}

/// What makes a bench config recurrent: the cell and the sequence length.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sequence {
    /// The cell (`rnn_tanh`, `lstm`, `gru`).
    pub cell: Cell,
    /// T, time steps per sequence.
    pub seq_len: usize,
}

/// Row-by-row MNIST's shape (issue 14): 28 steps of 28 pixels, hidden 128, batch 128, 10 classes.
const fn row_mnist(name: &'static str, cell: Cell) -> BenchConfig {
    BenchConfig {
        name,
        inputs: 28,
        width: 128,
        depth: 1,
        outputs: 10,
        batch: 128,
        activation: Activation::Tanh,
        recurrent: Some(Sequence { cell, seq_len: 28 }),
    }
}

fn activation_name<S: serde::Serializer>(a: &Activation, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&a.name())
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
        recurrent: None,
    },
    BenchConfig {
        name: "slide",
        inputs: 784,
        width: 256,
        depth: 10,
        outputs: 10,
        batch: 128,
        activation: Activation::Sigmoid,
        recurrent: None,
    },
    BenchConfig {
        name: "deep",
        inputs: 784,
        width: 128,
        depth: 50,
        outputs: 10,
        batch: 128,
        activation: Activation::Tanh,
        recurrent: None,
    },
    BenchConfig {
        name: "wide",
        inputs: 784,
        width: 2048,
        depth: 4,
        outputs: 10,
        batch: 256,
        activation: Activation::Relu,
        recurrent: None,
    },
];

/// The recurrent configs, beside `bench/torch_rnn.py`'s: `nn.LSTM`, `nn.RNN` (tanh), `nn.GRU`.
pub const RECURRENT_CONFIGS: [BenchConfig; 3] =
    [row_mnist("lstm", Cell::Lstm), row_mnist("rnn", Cell::RnnTanh), row_mnist("gru", Cell::Gru)];

/// Every config's name, MLPs first.
pub const CONFIG_NAMES: [&str; 7] = ["tiny", "slide", "deep", "wide", "lstm", "rnn", "gru"];

/// The config of this name (see [`CONFIG_NAMES`]).
pub fn config(name: &str) -> Option<BenchConfig> {
    CONFIGS.iter().chain(&RECURRENT_CONFIGS).find(|c| c.name == name).copied()
}

impl BenchConfig {
    /// Layer sizes `[inputs, width…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        MlpConfig::uniform(self.inputs, self.width, self.depth, self.outputs, self.activation, Init::Pytorch).sizes
    }

    /// Floating-point operations of one step as issue #3 counts them: 2·m·k·n for each of the
    /// three products of every layer (forward, ∂L/∂W, ∂L/∂x). Neither gradscope nor PyTorch
    /// computes ∂L/∂x of the first layer, so this is a nominal count, the same for both.
    ///
    /// Recurrent: per layer and step the two products x_t·W_ihᵀ ([B, I]·[I, G·H]) and
    /// h_{t−1}·W_hhᵀ ([B, H]·[H, G·H]), three times each (forward, ∂L/∂W, ∂L/∂input), plus the
    /// head's three; the gates' elementwise work is not counted.
    pub fn flops(&self) -> f64 {
        let b = self.batch as f64;
        match self.recurrent {
            None => self.sizes().windows(2).map(|w| 3.0 * 2.0 * b * (w[0] * w[1]) as f64).sum(),
            Some(seq) => {
                let (h, g, t) = (self.width as f64, seq.cell.gates() as f64, seq.seq_len as f64);
                let layers: f64 = (0..self.depth)
                    .map(|k| {
                        let fan_in = if k == 0 { self.inputs as f64 } else { h };
                        t * 3.0 * 2.0 * b * g * h * (fan_in + h)
                    })
                    .sum();
                layers + 3.0 * 2.0 * b * h * self.outputs as f64
            }
        }
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

/// The untimed steps before the timed ones: at least `steps` of them, and more until they have
/// taken `min_secs` seconds.
///
/// A floor in time as well as in steps because a short warm-up measured the machine settling,
/// not the step: at two threads `tiny`'s first ≈ 50 steps (3 ms) ran at one thread's speed —
/// the second thread had not yet got a core of its own from the scheduler — so its default 10
/// warm-up steps left most of the 50 timed ones in that state (median 0.059 ms against 0.044
/// after 200 warm-up steps; docs/performance.md, "Session 10"). `bench/timing.py` warms PyTorch
/// up by the same rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup {
    /// At least this many steps.
    pub steps: usize,
    /// And at least this long (seconds).
    pub min_secs: f64,
}

impl Warmup {
    /// The default for `steps` timed steps: steps/5 between 2 and 20 (1 below 10 steps), and
    /// at least [`Warmup::DEFAULT_SECS`].
    pub fn default_for(steps: usize) -> Self {
        let n = if steps < 10 { 1 } else { (steps / 5).clamp(2, 20) };
        Self { steps: n, min_secs: Self::DEFAULT_SECS }
    }

    /// Exactly `steps` untimed steps.
    pub fn exactly(steps: usize) -> Self {
        Self { steps, min_secs: 0.0 }
    }

    /// The default floor in time: 0.2 s.
    pub const DEFAULT_SECS: f64 = 0.2;

    /// Whether step `step` (0-based) of a run that started at `start` is still a warm-up step.
    fn holds(&self, step: usize, start: Instant) -> bool {
        step < self.steps || start.elapsed().as_secs_f64() < self.min_secs
    }
}

/// Times `steps` training steps of `cfg` after the warm-up's untimed ones.
pub fn run(cfg: &BenchConfig, threads: usize, steps: usize, warmup: Warmup, probe_every: u64) -> BenchResult {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    pool.install(|| run_in_pool(cfg, threads, steps, warmup, probe_every))
}

fn run_in_pool(cfg: &BenchConfig, threads: usize, steps: usize, warmup: Warmup, probe_every: u64) -> BenchResult {
    result(cfg, threads, steps, probe_every, times(cfg, threads, steps, warmup, probe_every))
}

/// The timed steps' durations in ms, MLP or recurrent as `cfg` says.
fn times(cfg: &BenchConfig, threads: usize, steps: usize, warmup: Warmup, probe_every: u64) -> Vec<f64> {
    match cfg.recurrent {
        None => time_mlp(cfg, threads, steps, warmup, probe_every),
        Some(seq) => time_recurrent(cfg, seq, threads, steps, warmup, probe_every),
    }
}

/// Runs `step(k)` for k = 0, 1, … through the warm-up, then `steps` more, and returns the
/// timed steps' durations in ms.
fn time_steps(steps: usize, warmup: Warmup, mut step: impl FnMut(usize)) -> Vec<f64> {
    let mut times = Vec::with_capacity(steps);
    let began = Instant::now();
    let mut k = 0;
    while warmup.holds(k, began) {
        step(k);
        k += 1;
    }
    for k in k..k + steps {
        let start = Instant::now();
        step(k);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times
}

fn time_mlp(cfg: &BenchConfig, threads: usize, steps: usize, warmup: Warmup, probe_every: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut mlp: Mlp<f32> =
        MlpConfig::uniform(cfg.inputs, cfg.width, cfg.depth, cfg.outputs, cfg.activation, Init::Pytorch).init(&mut rng);
    let x = Array2::from_shape_simple_fn((cfg.batch, cfg.inputs), || StandardNormal.sample(&mut rng));
    let y = Array2::from_shape_simple_fn((cfg.batch, cfg.outputs), || StandardNormal.sample(&mut rng));
    let mut opt = OptimizerState::new(Optimizer::Sgd(Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 }), &mlp);
    let mut probe = GradientProbe::new();
    let t = Threads::new(threads);
    time_steps(steps, warmup, |step| {
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
    })
}

/// The recurrent step: forward, cross-entropy, BPTT, the divergence check (loss and every
/// gradient), SGD. Probed steps record the per-time-step norms and take the `TimeRecord`.
fn time_recurrent(
    cfg: &BenchConfig,
    seq: Sequence,
    threads: usize,
    steps: usize,
    warmup: Warmup,
    probe_every: u64,
) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let net_cfg = RecurrentConfig::new(seq.cell, cfg.inputs, cfg.width, cfg.depth, cfg.outputs);
    let mut net = net_cfg.init::<f32, _>(&mut rng).expect("the bench configs are valid");
    let x = Array3::from_shape_simple_fn((seq.seq_len, cfg.batch, cfg.inputs), || StandardNormal.sample(&mut rng));
    let y: Vec<usize> = (0..cfg.batch).map(|_| rng.random_range(0..cfg.outputs)).collect();
    let sgd = Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 };
    let mut states: Vec<SgdState<f32>> = Vec::new();
    net.for_each_param(|_, _, v, _| states.push(SgdState::new(v.len())));
    let t = Threads::new(threads);
    time_steps(steps, warmup, |step| {
        net.probing = probe_every > 0 && (step as u64).is_multiple_of(probe_every);
        net.zero_grad();
        let loss = net.loss_and_grads(x.view(), Targets::Classes(&y), Loss::CrossEntropy, t);
        let mut finite = loss.is_finite();
        let mut k = 0;
        net.for_each_param(|_, _, v, g| {
            finite &= crate::nonfinite::all_finite(g);
            sgd.step(0.01, v, g, &mut states[k], false);
            k += 1;
        });
        std::hint::black_box(finite);
        if net.probing {
            std::hint::black_box(net.time_record());
        }
    })
}

fn result(cfg: &BenchConfig, threads: usize, steps: usize, probe_every: u64, mut times: Vec<f64>) -> BenchResult {
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

    /// The warm-up lasts its steps and its time, whichever is longer; the timed steps are
    /// exactly `steps`, MLP and recurrent alike.
    #[test]
    fn warmup_lasts_its_steps_and_its_time_then_times_exactly_steps() {
        assert_eq!(Warmup::default_for(50), Warmup { steps: 10, min_secs: Warmup::DEFAULT_SECS });
        assert_eq!(Warmup::default_for(5).steps, 1);
        assert_eq!(Warmup::default_for(1000).steps, 20);
        let start = Instant::now();
        assert!(Warmup::exactly(3).holds(2, start) && !Warmup::exactly(3).holds(3, start));
        assert!(Warmup { steps: 0, min_secs: 10.0 }.holds(1000, start));
        let tiny = &CONFIGS[0];
        let lstm = &RECURRENT_CONFIGS[0];
        for (cfg, secs) in [(tiny, 0.05), (tiny, 0.0), (lstm, 0.0)] {
            let start = Instant::now();
            let timed = times(cfg, 1, 7, Warmup { steps: 2, min_secs: secs }, 0);
            assert_eq!(timed.len(), 7, "{}", cfg.name);
            assert!(start.elapsed().as_secs_f64() >= secs);
        }
    }

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
    fn recurrent_flops_count_both_products_at_every_step() {
        // lstm: 28 steps × 3 products × 2·128·(4·128)·(28 + 128), plus the head's 3 × 2·128·128·10
        let want = 28.0 * 3.0 * 2.0 * 128.0 * 512.0 * 156.0 + 3.0 * 2.0 * 128.0 * 128.0 * 10.0;
        assert_eq!(config("lstm").unwrap().flops(), want);
        // the Elman cell has one gate block: a quarter of the recurrent products
        let rnn = config("rnn").unwrap().flops();
        assert_eq!(rnn, 28.0 * 3.0 * 2.0 * 128.0 * 128.0 * 156.0 + 3.0 * 2.0 * 128.0 * 128.0 * 10.0);
        assert!(CONFIG_NAMES.iter().all(|n| config(n).is_some_and(|c| c.name == *n)));
    }

    #[test]
    fn a_short_run_reports_sane_numbers() {
        let r = run(&CONFIGS[0], 1, 3, Warmup::exactly(1), 1);
        assert_eq!(r.steps, 3);
        assert!(r.min_ms > 0.0 && r.min_ms <= r.median_ms && r.median_ms <= r.max_ms && r.gflops > 0.0);
    }
}
