//! Probes: per-layer statistics of activations and gradients. Probes observe only; they never
//! change a number the training computes.
//!
//! The training loop ([`crate::train`]) decides, step by step, whether a probe is attached:
//! unprobed steps pay nothing. An attached probe is called per layer from inside the passes
//! ([`Mlp::loss_and_grads_probed`]), right after the layer's forward (its z, h and φ′ are fresh
//! in cache) and right after its backward (its gradients are), so that measuring every layer at
//! every step costs a few per cent of the step instead of a second trip through memory.

pub mod stats;

use crate::nn::{ForwardView, LayerView, Mlp, Scalar};
use crate::optim::ParamNorms;
use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

/// Per-layer statistics at one step, one entry per linear layer (output layer last).
///
/// For layer l with pre-activation `z_l = h_{l−1}·W_lᵀ + b_l` and output `h_l = φ(z_l)`;
/// for the output layer φ is the identity and `h_L = z_L = ŷ`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// 0-based index of the linear layer (`layers.{layer}.weight`).
    pub layer: usize,
    /// ‖∂L/∂W_l‖_F.
    pub grad_w_norm: f64,
    /// ‖∂L/∂b_l‖₂.
    pub grad_b_norm: f64,
    /// ‖∂L/∂z_l‖_F over the batch.
    pub grad_z_norm: f64,
    /// ‖∂L/∂h_l‖_F over the batch.
    pub grad_h_norm: f64,
    /// Mean of h_l over the batch and units.
    pub act_mean: f64,
    /// Standard deviation of h_l over the batch and units (divides by the count).
    pub act_std: f64,
    /// Mean of φ′(z_l) over the batch and units.
    pub dact_mean: f64,
    /// Fraction of (example, unit) pairs with φ′(z_l) < max φ′ / 20; for relu, the dead ones.
    pub saturation: f64,
    /// ‖W_l‖_F.
    pub weight_norm: f64,
    /// ‖ΔW_l‖_F / ‖W_l‖_F of the update made with this step's gradient; null when no update
    /// followed (the final probe, or a probe outside training).
    pub update_ratio: Option<f64>,
}

/// One line of `metrics.jsonl` (and the content of `probe.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Updates applied before this step's gradient was computed (0 = at initialisation).
    pub step: u64,
    /// 0-based epoch the step's batch belongs to.
    pub epoch: u64,
    /// Loss of this step's batch, before its update.
    pub train_loss: f64,
    /// grad_w_norm of the first layer / grad_w_norm of the last (output) layer.
    pub vanishing_ratio: f64,
    /// Per-layer statistics, input layer first.
    pub layers: Vec<LayerStats>,
}

/// Observes the network at probed steps. Hooks default to doing nothing.
pub trait Probe<F: Scalar> {
    /// Layer `v.index` has just computed z, h and φ′ for this batch.
    fn after_layer_forward(&mut self, _v: &ForwardView<'_, F>) {}
    /// Layer `v.index` has just received its gradients (∂L/∂z, ∂L/∂h, ∂L/∂W, ∂L/∂b).
    fn after_layer_backward(&mut self, _v: &LayerView<'_, F>) {}
    /// The whole backward pass of a probed step is done; the weights are still those before
    /// the update.
    fn after_backward(&mut self, _step: u64, _epoch: u64, _loss: f64, _mlp: &Mlp<F>) {}
    /// After the update of a probed step, with the norms the optimizer measured in it (or, when
    /// no update follows, the norms measured directly: [`ParamNorms::of`]).
    fn after_update(&mut self, _mlp: &Mlp<F>, _norms: &ParamNorms) {}
}

/// Σ g(x) over a contiguous slice: 16 lanes of F, each flushed to f64 every 1024 entries
/// (64 additions a lane), so that the loop vectorises and stays accurate in f32.
#[inline(always)]
fn lane_sum<F: Scalar>(a: ArrayView2<F>, g: impl Fn(F) -> F) -> f64 {
    let Some(xs) = a.as_slice() else { return a.iter().map(|&x| g(x).f64()).sum() };
    let mut total = 0.0f64;
    for block in xs.chunks(1024) {
        let mut lanes = [F::zero(); 16];
        let chunks = block.chunks_exact(16);
        let tail: f64 = chunks.remainder().iter().map(|&x| g(x).f64()).sum();
        for c in chunks {
            for (l, &x) in lanes.iter_mut().zip(c) {
                *l += g(x);
            }
        }
        total += lanes.iter().map(|l| l.f64()).sum::<f64>() + tail;
    }
    total
}

/// Σ x².
fn sum_sq<F: Scalar>(a: ArrayView2<F>) -> f64 {
    lane_sum(a, |x| x * x)
}

/// Σ x.
fn sum<F: Scalar>(a: ArrayView2<F>) -> f64 {
    lane_sum(a, |x| x)
}

/// Σ (x − mean)² (the second pass of a two-pass variance: no cancellation).
fn sum_dev_sq<F: Scalar>(a: ArrayView2<F>, mean: f64) -> f64 {
    let m = F::of(mean);
    lane_sum(a, |x| (x - m) * (x - m))
}

/// Σ x and the number of entries below `t`, in one pass.
fn sum_and_count_below<F: Scalar>(a: ArrayView2<F>, t: F) -> (f64, usize) {
    let Some(xs) = a.as_slice() else {
        return (a.iter().map(|&x| x.f64()).sum(), a.iter().filter(|&&x| x < t).count());
    };
    let (mut total, mut below) = (0.0f64, 0usize);
    for block in xs.chunks(1024) {
        let (mut lanes, mut counts) = ([F::zero(); 16], [0u32; 16]);
        let chunks = block.chunks_exact(16);
        for &x in chunks.remainder() {
            total += x.f64();
            below += usize::from(x < t);
        }
        for c in chunks {
            for ((l, k), &x) in lanes.iter_mut().zip(counts.iter_mut()).zip(c) {
                *l += x;
                *k += u32::from(x < t);
            }
        }
        total += lanes.iter().map(|l| l.f64()).sum::<f64>();
        below += counts.iter().map(|&k| k as usize).sum::<usize>();
    }
    (total, below)
}

/// Fills the forward statistics of `s` (activations and φ′) from a fresh forward view.
pub fn forward_stats<F: Scalar>(v: &ForwardView<'_, F>, s: &mut LayerStats) {
    let count = v.h.len().max(1) as f64;
    s.layer = v.index;
    s.act_mean = sum(v.h) / count;
    s.act_std = (sum_dev_sq(v.h, s.act_mean) / count).sqrt();
    match v.dphi {
        Some(d) => {
            let threshold = F::of(v.activation.max_derivative() / 20.0);
            let (total, below) = sum_and_count_below(d, threshold);
            s.dact_mean = total / count;
            s.saturation = below as f64 / count;
        }
        None => {
            // the linear output layer: φ′ = 1 everywhere
            s.dact_mean = 1.0;
            s.saturation = 0.0;
        }
    }
}

/// Fills the statistics of `s` that the backward view alone gives (‖∂L/∂b‖, ‖∂L/∂z‖, ‖∂L/∂h‖).
pub fn backward_stats<F: Scalar>(v: &LayerView<'_, F>, s: &mut LayerStats) {
    s.layer = v.index;
    s.grad_b_norm = v.linear.grad_bias.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt();
    s.grad_z_norm = sum_sq(v.grad_z).sqrt();
    s.grad_h_norm = sum_sq(v.grad_h).sqrt();
}

/// Fills ‖∂L/∂W‖, ‖W‖ and the update ratio of every layer from `norms`, and the vanishing ratio.
pub fn apply_norms(rec: &mut StepRecord, norms: &ParamNorms) {
    for (l, s) in rec.layers.iter_mut().enumerate() {
        s.grad_w_norm = norms.grad[l];
        s.weight_norm = norms.weight[l];
        s.update_ratio = norms.update.as_ref().map(|u| u[l] / norms.weight[l]);
    }
    rec.vanishing_ratio = vanishing_ratio(&rec.layers);
}

/// Every statistic of one layer but the parameter norms, from a network after its passes.
pub fn layer_stats<F: Scalar>(v: &LayerView<'_, F>) -> LayerStats {
    let mut s = LayerStats::default();
    forward_stats(&v.forward(), &mut s);
    backward_stats(v, &mut s);
    s
}

/// grad_w_norm of the first layer over that of the last.
pub fn vanishing_ratio(layers: &[LayerStats]) -> f64 {
    match (layers.first(), layers.last()) {
        (Some(first), Some(last)) => first.grad_w_norm / last.grad_w_norm,
        _ => f64::NAN,
    }
}

/// Measures a whole network after its forward and backward passes (for `probe`, outside
/// training: no update, so `update_ratio` is null).
pub fn record<F: Scalar>(step: u64, epoch: u64, loss: f64, mlp: &Mlp<F>) -> StepRecord {
    let layers: Vec<LayerStats> = (0..mlp.num_layers()).map(|l| layer_stats(&mlp.layer_view(l))).collect();
    let mut rec = StepRecord { step, epoch, train_loss: loss, vanishing_ratio: f64::NAN, layers };
    apply_norms(&mut rec, &ParamNorms::of(mlp));
    rec
}

/// The standard probe: the activation and gradient statistics of [`LayerStats`] measured per
/// layer inside the passes, the parameter norms and update ratio from the optimizer's loop.
/// The record is complete after [`Probe::after_update`].
#[derive(Debug, Default)]
pub struct GradientProbe {
    record: Option<StepRecord>,
    layers: Vec<LayerStats>,
}

impl GradientProbe {
    /// A probe with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of the last probed step, taken out.
    pub fn take(&mut self) -> Option<StepRecord> {
        self.record.take()
    }

    fn slot(&mut self, l: usize) -> &mut LayerStats {
        if self.layers.len() <= l {
            self.layers.resize(l + 1, LayerStats::default());
        }
        &mut self.layers[l]
    }
}

impl<F: Scalar> Probe<F> for GradientProbe {
    fn after_layer_forward(&mut self, v: &ForwardView<'_, F>) {
        forward_stats(v, self.slot(v.index));
    }

    fn after_layer_backward(&mut self, v: &LayerView<'_, F>) {
        backward_stats(v, self.slot(v.index));
    }

    fn after_backward(&mut self, step: u64, epoch: u64, loss: f64, mlp: &Mlp<F>) {
        let layers = self.layers[..mlp.num_layers()].to_vec();
        self.record = Some(StepRecord { step, epoch, train_loss: loss, vanishing_ratio: f64::NAN, layers });
    }

    fn after_update(&mut self, _mlp: &Mlp<F>, norms: &ParamNorms) {
        if let Some(rec) = self.record.as_mut() {
            apply_norms(rec, norms);
        }
    }
}
