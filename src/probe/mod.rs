//! Probes: per-layer statistics of activations and gradients. Probes observe only; they never
//! change a number the training computes.
//!
//! The training loop ([`crate::run`]) decides, step by step, whether a probe is attached:
//! unprobed steps pay nothing. An attached probe is called per layer from inside the passes
//! ([`Mlp::loss_and_grads_probed`]), right after the layer's forward (its z, h and φ′ are fresh
//! in cache) and right after its backward (its gradients are), so that measuring every layer at
//! every step costs a few per cent of the step instead of a second trip through memory.

pub mod flat;

use crate::nn::kernel::{self, FLUSH, LANES};
use crate::nn::recurrent::{Cell, RecurrentNet, TimeRecord};
use crate::nn::{Activation, ForwardView, Hook, LayerView, Mlp, Scalar};
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
    /// ‖∂L/∂γ‖₂ of this hidden layer's norm layer (`norms.{layer}.weight`); null without one.
    #[serde(default)]
    pub norm_grad_w_norm: Option<f64>,
    /// ‖∂L/∂β‖₂ of this hidden layer's norm layer (`norms.{layer}.bias`); null without one.
    #[serde(default)]
    pub norm_grad_b_norm: Option<f64>,
    /// ‖∂L/∂P‖_F of the projection of the residual block starting at this layer
    /// (`shortcuts.{layer}.weight`); null without one.
    #[serde(default)]
    pub shortcut_grad_w_norm: Option<f64>,
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
    /// With gradient clipping: the total L2 norm of every parameter gradient before clipping
    /// (null without clipping).
    #[serde(default)]
    pub grad_norm: Option<f64>,
    /// With gradient clipping: whether this step's gradients were clipped (null without).
    #[serde(default)]
    pub clipped: Option<bool>,
    /// A recurrent network's record through time (absent for an MLP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeRecord>,
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

/// Σ g(x) through [`kernel::lane_sum`] (a strided view, which the passes never hand out, is
/// summed plainly).
#[inline(always)]
fn lane_sum<F: Scalar>(a: ArrayView2<F>, g: impl Fn(F) -> F) -> f64 {
    match a.as_slice() {
        Some(xs) => kernel::lane_sum(xs, g),
        None => a.iter().map(|&x| g(x).f64()).sum(),
    }
}

/// Σ x², each square taken in f64 (in f32 a square underflows to 0 below |x| ≈ 1e-22, and
/// vanishing gradients go lower), summed as the optimizer sums its norms ([`crate::nn::simd::sum_sq`]).
fn sum_sq<F: Scalar>(a: ArrayView2<F>) -> f64 {
    match a.as_slice() {
        Some(xs) => crate::nn::simd::sum_sq(xs),
        None => a.iter().map(|&x| x.f64() * x.f64()).sum(),
    }
}

/// Σ x.
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
fn sum<F: Scalar>(a: ArrayView2<F>) -> f64 {
    lane_sum(a, |x| x)
}

/// Σ (x − mean)² (the second pass of a two-pass variance: no cancellation).
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
fn sum_dev_sq<F: Scalar>(a: ArrayView2<F>, mean: f64) -> f64 {
    let m = F::of(mean);
    lane_sum(a, |x| (x - m) * (x - m))
}

/// Σ x and the number of entries below `t`, in one pass.
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
fn sum_and_count_below<F: Scalar>(a: ArrayView2<F>, t: F) -> (f64, usize) {
    let Some(xs) = a.as_slice() else {
        return (a.iter().map(|&x| x.f64()).sum(), a.iter().filter(|&&x| x < t).count());
    };
    let (mut total, mut below) = (0.0f64, 0usize);
    for block in xs.chunks(FLUSH) {
        let (mut lanes, mut counts) = ([F::zero(); LANES], [0u32; LANES]);
        let chunks = block.chunks_exact(LANES);
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
        total += kernel::widen(&lanes);
        below += counts.iter().map(|&k| k as usize).sum::<usize>();
    }
    (total, below)
}

/// Entries sampled (evenly strided) for the percentiles and the φ′ histogram of a larger layer.
pub const DETAIL_SAMPLE: usize = 4096;

/// Every `ceil(n / DETAIL_SAMPLE)`-th entry of `a`, widened to f64, into `out`.
fn sample<F: Scalar>(a: ArrayView2<F>, out: &mut Vec<f64>) {
    out.clear();
    let stride = a.len().div_ceil(DETAIL_SAMPLE).max(1);
    match a.as_slice() {
        Some(xs) => out.extend(xs.iter().step_by(stride).map(|x| x.f64())),
        None => out.extend(a.iter().step_by(stride).map(|x| x.f64())),
    }
}

/// Fills the forward statistics of `s` (activations and φ′) from a fresh forward view.
///
/// With `detail` (a scratch buffer), also the percentiles of h and the histogram of φ′, over
/// an evenly strided sample of at most [`DETAIL_SAMPLE`] entries (all of them in smaller
/// layers); without, those fields are NaN and empty. Sorting is what costs here, so training
/// takes the detail only at some probed steps (with the test loss, `train.rs`).
pub fn forward_stats<F: Scalar>(v: &ForwardView<'_, F>, s: &mut LayerStats, detail: Option<&mut Vec<f64>>) {
    let count = v.h.len().max(1) as f64;
    s.layer = v.index;
    s.act_mean = sum(v.h) / count;
    s.act_std = (sum_dev_sq(v.h, s.act_mean) / count).sqrt();
    let max = v.activation.max_derivative();
    match v.dphi {
        Some(d) => {
            let threshold = F::of(max / 20.0);
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
    let Some(buf) = detail else {
        (s.act_p05, s.act_p50, s.act_p95) = (f64::NAN, f64::NAN, f64::NAN);
        s.dact_hist.clear();
        return;
    };
    sample(v.h, buf);
    s.act_p05 = quantile(buf, 0.05);
    s.act_p50 = quantile(buf, 0.50);
    s.act_p95 = quantile(buf, 0.95);
    let mut hist = [0usize; DACT_BINS];
    let n = match v.dphi {
        Some(d) => {
            sample(d, buf);
            for &d in buf.iter().filter(|d| !d.is_nan()) {
                // a float-to-int cast saturates: below 0 gives bin 0, and the clamp puts 1 in the last
                hist[((d / max * DACT_BINS as f64).floor() as usize).min(DACT_BINS - 1)] += 1;
            }
            buf.len()
        }
        None => {
            hist[DACT_BINS - 1] = 1;
            1
        }
    };
    s.dact_hist = hist.iter().map(|&k| k as f64 / n.max(1) as f64).collect();
}

/// Fills the statistics of `s` that the backward view alone gives (‖∂L/∂b‖, ‖∂L/∂z‖, ‖∂L/∂h‖).
pub fn backward_stats<F: Scalar>(v: &LayerView<'_, F>, s: &mut LayerStats) {
    s.layer = v.index;
    s.grad_b_norm = v.linear.grad_bias.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt();
    s.grad_z_norm = sum_sq(v.grad_z).sqrt();
    s.grad_h_norm = sum_sq(v.grad_h).sqrt();
    let norm1 = |a: &ndarray::Array1<F>| a.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt();
    s.norm_grad_w_norm = v.norm.map(|n| norm1(&n.grad_weight));
    s.norm_grad_b_norm = v.norm.map(|n| norm1(&n.grad_bias));
    s.shortcut_grad_w_norm = v.shortcut.map(|p| p.grad_weight.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt());
}

/// Replaces every layer's `grad_w_norm` (e.g. by the norms before gradient clipping) and
/// recomputes the vanishing ratio.
pub fn set_grad_w_norms(rec: &mut StepRecord, grads: &[f64]) {
    for (s, &g) in rec.layers.iter_mut().zip(grads) {
        s.grad_w_norm = g;
    }
    rec.vanishing_ratio = vanishing_ratio(&rec.layers);
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
    forward_stats(&v.forward(), &mut s, Some(&mut Vec::new()));
    backward_stats(v, &mut s);
    s
}

impl StepRecord {
    /// A record of these layers' statistics; the vanishing ratio is filled by [`apply_norms`],
    /// the test figures by the training loop.
    pub fn new(step: u64, epoch: u64, train_loss: f64, layers: Vec<LayerStats>) -> Self {
        Self {
            step,
            epoch,
            train_loss,
            vanishing_ratio: f64::NAN,
            test_loss: None,
            test_accuracy: None,
            layers,
            grad_norm: None,
            clipped: None,
            time: None,
        }
    }
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
    let mut rec = StepRecord::new(step, epoch, loss, layers);
    apply_norms(&mut rec, &ParamNorms::of(mlp));
    rec
}

/// A recurrent network's [`LayerStats`], one per recurrent layer and the head last (the
/// parameter norms come from [`apply_norms`]: `rnn.weight_ih_l{k}`, then `fc.weight`).
///
/// Layer k: h is its output over every step and row (`[T·batch, H]`); φ′ is the Elman cell's
/// (1 − h² for tanh, h > 0 for relu) and NaN for the gated cells, whose gates are in the
/// record through time; z is the gate pre-activations a_t (`grad_z_norm` = ‖∂L/∂a‖ over all
/// steps), `grad_h_norm` = ‖∂L/∂h‖ over all steps, `grad_b_norm` = ‖∂L/∂b_ih‖. The head is
/// the linear output layer, as an MLP's.
pub fn recurrent_layers<F: Scalar>(net: &RecurrentNet<F>, mut detail: Option<&mut Vec<f64>>) -> Vec<LayerStats> {
    let norm = |xs: &[F]| crate::nn::simd::sum_sq(xs).sqrt();
    let mut out = Vec::with_capacity(net.layers.len() + 1);
    for (k, l) in net.layers.iter().enumerate() {
        let h = l.output();
        let dphi = match net.cell {
            Cell::RnnTanh => Some(h.mapv(|v| F::one() - v * v)),
            Cell::RnnRelu => Some(h.mapv(|v| if v > F::zero() { F::one() } else { F::zero() })),
            Cell::Lstm | Cell::Gru => None,
        };
        let activation = if dphi.is_some() { net.cell.nonlinearity() } else { Activation::Identity };
        let v = ForwardView { index: k, activation, z: h, h, dphi: dphi.as_ref().map(|d| d.view()) };
        let mut s = LayerStats::default();
        forward_stats(&v, &mut s, detail.as_deref_mut());
        if dphi.is_none() {
            (s.dact_mean, s.saturation) = (f64::NAN, f64::NAN);
            s.dact_hist.clear();
        }
        s.grad_z_norm = norm(l.grad_pre());
        s.grad_h_norm = l.grad_h_norms().iter().map(|g| g * g).sum::<f64>().sqrt();
        s.grad_b_norm = l.grad_bias_ih.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt();
        out.push(s);
    }
    let (y, gy) = (net.output(), net.grad_output());
    let v = ForwardView { index: net.layers.len(), activation: Activation::Identity, z: y, h: y, dphi: None };
    let mut s = LayerStats::default();
    forward_stats(&v, &mut s, detail);
    s.grad_z_norm = sum_sq(gy).sqrt();
    s.grad_h_norm = s.grad_z_norm;
    s.grad_b_norm = net.fc.grad_bias.iter().map(|&x| x.f64() * x.f64()).sum::<f64>().sqrt();
    out.push(s);
    out
}

/// The standard probe: the activation and gradient statistics of [`LayerStats`] measured per
/// layer inside the passes, the parameter norms and update ratio from the optimizer's loop.
/// It is the [`Hook`] of a probed step's passes; the record is complete after
/// [`GradientProbe::after_update`].
#[derive(Debug, Default)]
pub struct GradientProbe {
    /// Also measure the percentiles and φ′ histogram at the next probed step.
    pub detail: bool,
    record: Option<StepRecord>,
    layers: Vec<LayerStats>,
    scratch: Vec<f64>,
}

impl GradientProbe {
    /// A probe with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole backward pass of a probed step is done (the weights are still those before the
    /// update): starts the step's record from the per-layer statistics the hooks measured.
    pub fn after_backward<F: Scalar>(&mut self, step: u64, epoch: u64, loss: f64, mlp: &Mlp<F>) {
        let layers = self.layers[..mlp.num_layers()].to_vec();
        self.record = Some(StepRecord::new(step, epoch, loss, layers));
    }

    /// [`GradientProbe::after_backward`] for a recurrent network, whose backward pass ran with
    /// `probing` on: the layers' statistics ([`recurrent_layers`]) and the record through time.
    pub fn after_backward_recurrent<F: Scalar>(&mut self, step: u64, epoch: u64, loss: f64, net: &RecurrentNet<F>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let layers = recurrent_layers(net, self.detail.then_some(&mut scratch));
        self.scratch = scratch;
        let mut rec = StepRecord::new(step, epoch, loss, layers);
        rec.time = Some(net.time_record());
        self.record = Some(rec);
    }

    /// After the update of a probed step, with the norms the optimizer measured in it (or, when
    /// no update follows, the norms measured directly: [`ParamNorms::of`]).
    pub fn after_update(&mut self, norms: &ParamNorms) {
        if let Some(rec) = self.record.as_mut() {
            apply_norms(rec, norms);
        }
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

impl<F: Scalar> Hook<F> for GradientProbe {
    fn after_layer_forward(&mut self, v: &ForwardView<'_, F>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let detail = self.detail.then_some(&mut scratch);
        forward_stats(v, self.slot(v.index), detail);
        self.scratch = scratch;
    }

    fn after_layer_backward(&mut self, v: &LayerView<'_, F>) {
        backward_stats(v, self.slot(v.index));
    }

    /// The layers' statistics, the first half of the layers on one thread and the rest on the
    /// other (each layer's as `after_layer_forward` takes them: the same bits); with the detail,
    /// layer by layer (one scratch buffer).
    fn after_forward_pass<'a>(&mut self, layers: usize, view: &(dyn Fn(usize) -> ForwardView<'a, F> + Sync)) {
        if self.detail || layers == 0 {
            return (0..layers).for_each(|l| self.after_layer_forward(&view(l)));
        }
        self.slot(layers - 1);
        each_half(&mut self.layers[..layers], |l, s| forward_stats(&view(l), s, None));
    }

    /// [`Hook::after_backward_pass`] as `after_forward_pass`: half of the layers on each thread.
    fn after_backward_pass<'a>(&mut self, layers: usize, view: &(dyn Fn(usize) -> LayerView<'a, F> + Sync)) {
        if layers == 0 {
            return;
        }
        self.slot(layers - 1);
        each_half(&mut self.layers[..layers], |l, s| backward_stats(&view(l), s));
    }
}

/// `stats(l, &mut slots[l])` for every l, the first half of the slots on one thread of the pool
/// and the second on the other ([`crate::nn::par::join`]; in turn on a pool of one).
fn each_half(slots: &mut [LayerStats], stats: impl Fn(usize, &mut LayerStats) + Sync) {
    let mid = slots.len() / 2;
    let (a, b) = slots.split_at_mut(mid);
    let stats = &stats;
    crate::nn::par::join(
        || a.iter_mut().enumerate().for_each(|(l, s)| stats(l, s)),
        || b.iter_mut().enumerate().for_each(|(l, s)| stats(mid + l, s)),
    );
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
