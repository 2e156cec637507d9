//! Probes: per-layer statistics of activations and gradients, read from the network after a
//! backward pass. Probes observe only; they never change a number the training computes.
//!
//! The training loop ([`crate::train`]) is the only caller of these hooks.

pub mod stats;

use crate::nn::{LayerView, Mlp, Scalar};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use stats::Moments;

/// Per-layer statistics at one step, one entry per linear layer (output layer last).
///
/// For layer l with pre-activation `z_l = h_{l−1}·W_lᵀ + b_l` and output `h_l = φ(z_l)`;
/// for the output layer φ is the identity and `h_L = z_L = ŷ`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// After the backward pass of a probed step: the network holds this batch's activations
    /// and gradients, and the weights before the update.
    fn after_backward(&mut self, _step: u64, _epoch: u64, _loss: f64, _mlp: &Mlp<F>) {}
    /// After the update of a probed step.
    fn after_update(&mut self, _mlp: &Mlp<F>) {}
}

/// Statistics of one layer view (everything but `update_ratio`).
pub fn layer_stats<F: Scalar>(v: &LayerView<'_, F>) -> LayerStats {
    let norm = |a: ndarray::ArrayView2<F>| a.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt();
    let mut act = Moments::default();
    v.h.iter().for_each(|&x| act.push(x.f64()));
    let threshold = v.activation.max_derivative() / 20.0;
    let (mut dsum, mut saturated) = (0.0, 0usize);
    for &z in v.z.iter() {
        let d = v.activation.df(z).f64();
        dsum += d;
        saturated += usize::from(d < threshold);
    }
    let count = v.z.len().max(1) as f64;
    LayerStats {
        layer: v.index,
        grad_w_norm: norm(v.linear.grad_weight.view()),
        grad_b_norm: v.linear.grad_bias.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt(),
        grad_z_norm: norm(v.grad_z),
        grad_h_norm: norm(v.grad_h),
        act_mean: act.mean,
        act_std: act.std(),
        dact_mean: dsum / count,
        saturation: saturated as f64 / count,
        weight_norm: norm(v.linear.weight.view()),
        update_ratio: None,
    }
}

/// grad_w_norm of the first layer over that of the last.
pub fn vanishing_ratio(layers: &[LayerStats]) -> f64 {
    match (layers.first(), layers.last()) {
        (Some(first), Some(last)) => first.grad_w_norm / last.grad_w_norm,
        _ => f64::NAN,
    }
}

/// Measures a whole network after a backward pass.
pub fn record<F: Scalar>(step: u64, epoch: u64, loss: f64, mlp: &Mlp<F>) -> StepRecord {
    let layers: Vec<LayerStats> = (0..mlp.num_layers()).map(|l| layer_stats(&mlp.layer_view(l))).collect();
    StepRecord { step, epoch, train_loss: loss, vanishing_ratio: vanishing_ratio(&layers), layers }
}

/// The standard probe: every statistic of [`LayerStats`], including the update ratio, for which
/// it keeps a copy of the weights from before the update.
#[derive(Debug, Default)]
pub struct GradientProbe<F> {
    pending: Option<StepRecord>,
    before: Vec<Array2<F>>,
}

impl<F: Scalar> GradientProbe<F> {
    /// A probe with nothing recorded.
    pub fn new() -> Self {
        Self { pending: None, before: Vec::new() }
    }

    /// The record of the last probed step, taken out.
    pub fn take(&mut self) -> Option<StepRecord> {
        self.pending.take()
    }
}

impl<F: Scalar> Probe<F> for GradientProbe<F> {
    fn after_backward(&mut self, step: u64, epoch: u64, loss: f64, mlp: &Mlp<F>) {
        self.pending = Some(record(step, epoch, loss, mlp));
        if self.before.len() != mlp.layers.len() {
            self.before = mlp.layers.iter().map(|l| l.weight.clone()).collect();
        } else {
            for (b, l) in self.before.iter_mut().zip(&mlp.layers) {
                b.assign(&l.weight);
            }
        }
    }

    fn after_update(&mut self, mlp: &Mlp<F>) {
        let Some(rec) = self.pending.as_mut() else { return };
        for ((stats, before), layer) in rec.layers.iter_mut().zip(&self.before).zip(&mlp.layers) {
            let mut diff2 = 0.0;
            let mut norm2 = 0.0;
            for (&b, &a) in before.iter().zip(layer.weight.iter()) {
                let d = a.f64() - b.f64();
                diff2 += d * d;
                norm2 += b.f64() * b.f64();
            }
            stats.update_ratio = Some(diff2.sqrt() / norm2.sqrt());
        }
    }
}
