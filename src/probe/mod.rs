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
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_w_norm: f64,
    /// ‖∂L/∂b_l‖₂.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_b_norm: f64,
    /// ‖∂L/∂z_l‖_F over the batch.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_z_norm: f64,
    /// ‖∂L/∂h_l‖_F over the batch.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_h_norm: f64,
    /// Mean of h_l over the batch and units.
    #[serde(deserialize_with = "nan_if_null")]
    pub act_mean: f64,
    /// Standard deviation of h_l over the batch and units (divides by the count).
    #[serde(deserialize_with = "nan_if_null")]
    pub act_std: f64,
    /// 5th percentile of h_l over the batch and units (linear interpolation between the two
    /// nearest ranks, as `numpy.percentile`'s default).
    #[serde(deserialize_with = "nan_if_null")]
    pub act_p05: f64,
    /// Median of h_l over the batch and units (as `act_p05`).
    #[serde(deserialize_with = "nan_if_null")]
    pub act_p50: f64,
    /// 95th percentile of h_l over the batch and units (as `act_p05`).
    #[serde(deserialize_with = "nan_if_null")]
    pub act_p95: f64,
    /// Mean of φ′(z_l) over the batch and units.
    #[serde(deserialize_with = "nan_if_null")]
    pub dact_mean: f64,
    /// Histogram of φ′(z_l) / max φ′ over the batch and units: [`DACT_BINS`] fractions, bin k
    /// holding [k/20, (k+1)/20); values below 0 count in the first bin, values of 1 or more in
    /// the last, NaN in none. Bin 0 is what `saturation` counts (for φ′ ≥ 0).
    pub dact_hist: Vec<f64>,
    /// Fraction of (example, unit) pairs with φ′(z_l) < max φ′ / 20; for relu, the dead ones.
    #[serde(deserialize_with = "nan_if_null")]
    pub saturation: f64,
    /// ‖W_l‖_F.
    #[serde(deserialize_with = "nan_if_null")]
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
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    /// grad_w_norm of the first layer / grad_w_norm of the last (output) layer.
    #[serde(deserialize_with = "nan_if_null")]
    pub vanishing_ratio: f64,
    /// Loss over the first [`TEST_ROWS_PROBED`] rows of the test split (all of them when fewer) at
    /// the weights this step's gradient was computed at; null without a test split or outside
    /// training.
    #[serde(default)]
    pub test_loss: Option<f64>,
    /// Accuracy over the same rows (classification only).
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    /// Per-layer statistics, input layer first.
    pub layers: Vec<LayerStats>,
}

/// Bins of [`LayerStats::dact_hist`], each 1/20 of max φ′ wide.
pub const DACT_BINS: usize = 20;

/// Test rows evaluated at each probed step (the whole test split is evaluated at the end).
pub const TEST_ROWS_PROBED: usize = 2048;

/// JSON has no NaN or infinity (serde_json writes them as null): read null back as NaN, so a
/// record of a run whose gradients overflowed still loads.
pub fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The `p`-th quantile (0 ≤ p ≤ 1) of `values`, interpolating linearly between the two nearest
/// ranks (`numpy.percentile`'s default); NaN for no values. Reorders `values`.
pub fn quantile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let k = pos.floor() as usize;
    let (_, &mut lo, rest) = values.select_nth_unstable_by(k, f64::total_cmp);
    let frac = pos - k as f64;
    if frac == 0.0 {
        return lo;
    }
    let hi = rest.iter().copied().min_by(f64::total_cmp).unwrap_or(lo);
    lo + frac * (hi - lo)
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
    let mut values: Vec<f64> = v.h.iter().map(|&x| x.f64()).collect();
    values.iter().for_each(|&x| act.push(x));
    let max = v.activation.max_derivative();
    let threshold = max / 20.0;
    let (mut dsum, mut saturated) = (0.0, 0usize);
    let mut hist = [0usize; DACT_BINS];
    for &z in v.z.iter() {
        let d = v.activation.df(z).f64();
        dsum += d;
        saturated += usize::from(d < threshold);
        if !d.is_nan() {
            // a float-to-int cast saturates: below 0 gives bin 0, and the clamp puts 1 in the last
            hist[((d / max * DACT_BINS as f64).floor() as usize).min(DACT_BINS - 1)] += 1;
        }
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
        act_p05: quantile(&mut values, 0.05),
        act_p50: quantile(&mut values, 0.50),
        act_p95: quantile(&mut values, 0.95),
        dact_mean: dsum / count,
        dact_hist: hist.iter().map(|&n| n as f64 / count).collect(),
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
    StepRecord {
        step,
        epoch,
        train_loss: loss,
        vanishing_ratio: vanishing_ratio(&layers),
        test_loss: None,
        test_accuracy: None,
        layers,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Init, MlpConfig, Targets, Threads};
    use ndarray::Array2;
    use rand::SeedableRng;

    #[test]
    fn quantiles_match_numpy_percentile() {
        // numpy.percentile(np.arange(1, 11), [5, 50, 95]) == [1.45, 5.5, 9.55]
        let mut v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        for (p, want) in [(0.05, 1.45), (0.5, 5.5), (0.95, 9.55), (0.0, 1.0), (1.0, 10.0)] {
            assert!((quantile(&mut v, p) - want).abs() < 1e-12, "p {p}");
        }
        assert_eq!(quantile(&mut [3.0, 1.0, 2.0], 0.5), 2.0);
        assert!(quantile(&mut [], 0.5).is_nan());
    }

    /// The histogram is a distribution over the batch, and its first bin is `saturation`.
    #[test]
    fn dact_hist_sums_to_one_and_its_first_bin_is_saturation() {
        for act in [Activation::Sigmoid, Activation::Relu, Activation::Tanh] {
            let mut cfg = MlpConfig::uniform(4, 8, 3, 1, act, Init::Gaussian);
            cfg.sigma_w2 = 16.0; // large weights: some units saturate
            let mut mlp = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
            let x = Array2::from_shape_fn((32, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
            let y = Array2::from_shape_fn((32, 1), |(i, _)| i as f64 / 32.0);
            mlp.loss_and_grads(x.view(), Targets::Values(y.view()), crate::nn::Loss::Mse, Threads::One);
            let rec = record(0, 0, 1.0, &mlp);
            for l in &rec.layers {
                assert_eq!(l.dact_hist.len(), DACT_BINS);
                assert!((l.dact_hist.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{act:?} {l:?}");
                assert_eq!(l.dact_hist[0], l.saturation, "{act:?} layer {}", l.layer);
                assert!(l.act_p05 <= l.act_p50 && l.act_p50 <= l.act_p95);
            }
            assert!(rec.layers[..3].iter().any(|l| l.saturation > 0.0), "{act:?}: nothing saturated");
            // the output layer is the identity: φ′ = 1, all in the last bin
            assert_eq!(rec.layers[3].dact_hist[DACT_BINS - 1], 1.0);
        }
    }

    /// serde_json writes NaN and infinities as null; such records load back, as NaN.
    #[test]
    fn records_with_nan_round_trip_through_json() {
        let cfg = MlpConfig::uniform(2, 3, 1, 1, Activation::Tanh, Init::Pytorch);
        let mlp = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let mut rec = record(3, 0, f64::NAN, &mlp);
        rec.layers[0].grad_w_norm = f64::INFINITY;
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.contains("\"train_loss\":null"), "{line}");
        let back: StepRecord = serde_json::from_str(&line).unwrap();
        assert!(back.train_loss.is_nan() && back.layers[0].grad_w_norm.is_nan());
        assert_eq!(back.layers[1].weight_norm, rec.layers[1].weight_norm);
        assert_eq!((back.test_loss, back.test_accuracy), (None, None));
    }
}
