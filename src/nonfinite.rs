//! Divergence: catching the first NaN or infinity of a training step, and naming where it arose.
//!
//! The normal path costs one read of every parameter gradient per step, made by [`Guard`] right
//! after the backward pass wrote each layer's gradient (so it is still in cache): the gradients
//! are summed lane-wise as `g·0`, which is NaN exactly when some `g` is NaN or infinite, so the
//! loop has no branch and vectorises. Together with the loss (checked every
//! step) this catches a non-finite activation too: an infinite or NaN `h_{l}` makes every entry
//! of its column of `∂L/∂W_{l+1} = ∂L/∂z_{l+1}ᵀ·h_l` NaN or infinite (`0·∞` is NaN). Only when
//! something is non-finite does [`locate`] scan the network in the order the step computed it —
//! weights, then each layer's `z` and `h` from the input, the loss, then each layer's gradients
//! from the output — to name the first tensor that holds one.
//!
//! What is not caught: a pre-activation that overflows and is squashed to a finite value by a
//! saturating φ (σ(∞) = 1, tanh(∞) = 1, ReLU(−∞) = 0), since nothing downstream sees it.

use crate::nn::{ForwardView, Hook, LAYERS, LayerView, Mlp, Name, Network, Scalar, kernel};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which part of a step first held a non-finite value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// A parameter (only after an update that overflowed).
    Weight,
    /// A pre-activation `z` or an output `h` of the forward pass.
    Activation,
    /// The loss itself (every activation was finite).
    Loss,
    /// A gradient of the backward pass.
    Gradient,
}

/// Where a non-finite value first appeared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonFinite {
    /// The step (0-based) whose forward or backward pass produced it.
    pub step: u64,
    /// Weight, activation, loss or gradient.
    pub part: Part,
    /// The 0-based linear layer (output layer last); null for the loss.
    pub layer: Option<usize>,
    /// The tensor: `weight`, `bias`, `z`, `h`, `grad_h`, `grad_z`, `grad_weight`, `grad_bias`;
    /// null for the loss.
    pub tensor: Option<String>,
}

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.part {
            Part::Weight => "the parameters",
            Part::Activation => "the forward pass",
            Part::Loss => "the loss",
            Part::Gradient => "the backward pass",
        };
        write!(f, "a NaN or infinity first appeared at step {} in {what}", self.step)?;
        if let (Some(l), Some(t)) = (self.layer, &self.tensor) {
            write!(f, ", in {t} of layer {l}")?;
        }
        Ok(())
    }
}

/// True when every entry of `v` is finite: Σ x·0 in the lanes of [`kernel::lane_sum`] is 0
/// for finite entries and NaN as soon as one is NaN or infinite (branch-free, vectorised).
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
pub fn all_finite<F: Scalar>(v: &[F]) -> bool {
    kernel::lane_sum(v, |x| x * F::zero()).is_finite()
}

/// [`all_finite`], in two halves on two threads for a large tensor
/// ([`crate::nn::simd::split_point`]); whether a value is finite does not depend on the order.
pub fn all_finite_split<F: Scalar>(v: &[F]) -> bool {
    match crate::nn::simd::split_point(v.len(), crate::nn::simd::LINE) {
        Some(mid) => {
            let (a, b) = v.split_at(mid);
            let (fa, fb) = crate::nn::par::join(|| all_finite(a), || all_finite(b));
            fa && fb
        }
        None => all_finite(v),
    }
}

/// True when every parameter gradient of the last backward pass is finite.
pub fn grads_finite<F: Scalar, N: Network<F>>(net: &N) -> bool {
    let mut finite = true;
    net.visit(&mut |t| finite &= t.grad.is_none_or(all_finite));
    finite
}

/// A probe that checks each layer's parameter gradients as soon as the backward pass has made
/// them (while they are still in cache), and passes every call on to an inner probe. The
/// training loop attaches one at every step. A layer's ∂L/∂W is not read again where its product
/// already told whether the values it stored are finite ([`crate::nn::Linear::grad_weight_finite`]:
/// f32 on an AVX-512 CPU), which saves a pass over most of the gradient's memory.
pub struct Guard<'a, F: Scalar> {
    /// The probe of a probed step, if any.
    pub inner: Option<&'a mut dyn Hook<F>>,
    /// False once some parameter gradient held a NaN or infinity.
    pub finite: bool,
}

impl<'a, F: Scalar> Guard<'a, F> {
    /// A guard around `inner`, nothing seen yet.
    pub fn new(inner: Option<&'a mut dyn Hook<F>>) -> Self {
        Self { inner, finite: true }
    }
}

impl<F: Scalar> Hook<F> for Guard<'_, F> {
    fn after_layer_forward(&mut self, v: &ForwardView<'_, F>) {
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_layer_forward(v);
        }
    }

    fn after_layer_backward(&mut self, v: &LayerView<'_, F>) {
        self.check(v);
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_layer_backward(v);
        }
    }

    /// The inner probe sees all the layers at once, as the engine shows them (it may spread them
    /// over the threads).
    fn after_forward_pass<'v>(&mut self, layers: usize, view: &(dyn Fn(usize) -> ForwardView<'v, F> + Sync)) {
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_forward_pass(layers, view);
        }
    }

    /// Every layer checked, from the output; then the inner probe sees them all at once.
    fn after_backward_pass<'v>(&mut self, layers: usize, view: &(dyn Fn(usize) -> LayerView<'v, F> + Sync)) {
        (0..layers).rev().for_each(|l| self.check(&view(l)));
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_backward_pass(layers, view);
        }
    }
}

impl<F: Scalar> Guard<'_, F> {
    /// Whether every trained tensor's gradient of the layer is finite, into `self.finite`.
    fn check(&mut self, v: &LayerView<'_, F>) {
        // every trained tensor of the layer (its norm layer's γ, β and projection included); ∂L/∂W
        // of the layer itself as its product saw it when it stored it, where the product could tell
        let known = v.linear.grad_weight_finite();
        let weight_grad = v.linear.grad_weight.as_ptr();
        let mut finite = true;
        v.visit(&mut |t| {
            finite &= t.grad.is_none_or(|g| match known {
                Some(ok) if g.as_ptr() == weight_grad => ok,
                _ => all_finite_split(g),
            })
        });
        self.finite &= finite;
    }
}

/// The first tensor of the last step, in the order the step computed them, that holds a
/// non-finite value; `None` when all are finite and so is `loss`.
pub fn locate<F: Scalar>(mlp: &Mlp<F>, step: u64, loss: f64) -> Option<NonFinite> {
    fn bad<'a, F: Scalar>(mut v: impl Iterator<Item = &'a F>) -> bool {
        v.any(|x| !x.is_finite())
    }
    let at =
        |part, layer, tensor: &str| Some(NonFinite { step, part, layer: Some(layer), tensor: Some(tensor.into()) });
    for t in mlp.tensors() {
        if t.kind.is_param() && bad(t.value.iter()) {
            return at(Part::Weight, t.name.index, &tensor_name(t.name, ""));
        }
    }
    let n = mlp.num_layers();
    for l in 0..n {
        let v = mlp.layer_view(l);
        if bad(v.z.iter()) {
            return at(Part::Activation, l, "z");
        }
        if l + 1 < n && bad(v.h.iter()) {
            return at(Part::Activation, l, "h");
        }
    }
    if !loss.is_finite() {
        return Some(NonFinite { step, part: Part::Loss, layer: None, tensor: None });
    }
    for l in (0..n).rev() {
        let v = mlp.layer_view(l);
        if l + 1 < n && bad(v.grad_h.iter()) {
            return at(Part::Gradient, l, "grad_h");
        }
        if bad(v.grad_z.iter()) {
            return at(Part::Gradient, l, "grad_z");
        }
        let mut first = None;
        v.visit(&mut |t| {
            if first.is_none() && t.grad.is_some_and(|g| bad(g.iter())) {
                first = Some(t.name);
            }
        });
        if let Some(name) = first {
            return at(Part::Gradient, l, &tensor_name(name, "grad_"));
        }
    }
    None
}

/// [`locate`] for a network seen only through its tensors (a recurrent net): a weight, then
/// the loss, then a gradient, each named in full (`rnn.weight_hh_l0`, `grad_fc.bias`), the layer
/// being the tensor's index in its group.
pub fn locate_tensors<F: Scalar, N: Network<F>>(net: &N, step: u64, loss: f64) -> Option<NonFinite> {
    let tensors = net.tensors();
    let at = |part, name: Name, grad: &str| {
        Some(NonFinite { step, part, layer: Some(name.index), tensor: Some(format!("{grad}{name}")) })
    };
    if let Some(t) = tensors.iter().find(|t| t.kind.is_param() && !all_finite(t.value)) {
        return at(Part::Weight, t.name, "");
    }
    if !loss.is_finite() {
        return Some(NonFinite { step, part: Part::Loss, layer: None, tensor: None });
    }
    let t = tensors.iter().find(|t| t.grad.is_some_and(|g| !all_finite(g)))?;
    at(Part::Gradient, t.name, "grad_")
}

/// How [`NonFinite::tensor`] names a parameter (or, with `grad = "grad_"`, its gradient): a
/// linear layer's by its leaf (`weight`, `grad_bias`), a norm layer's or projection's in full
/// (`norms.3.weight`, `grad_shortcuts.0.bias`).
fn tensor_name(name: Name, grad: &str) -> String {
    if name.group == LAYERS { format!("{grad}{}", name.leaf) } else { format!("{grad}{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Init, Loss, MlpConfig, Targets, Threads};
    use ndarray::Array2;
    use rand::SeedableRng;

    /// Where a two-thread step goes by halves of the batch, the probe takes half of the layers'
    /// statistics on each thread (`after_forward_pass`, `after_backward_pass`): the bits of
    /// taking them layer by layer from the same passes (`record`), behind the guard as training
    /// attaches it, with and without the detail.
    #[test]
    fn layers_spread_over_two_threads_have_the_bits_of_one_by_one() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let cfg = MlpConfig::uniform(12, 24, 5, 3, Activation::Sigmoid, Init::Pytorch);
            let mut mlp = cfg.init::<f32, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
            let x = Array2::from_shape_fn((40, 12), |(i, j)| ((i * 12 + j) as f32 * 0.37).sin());
            let y = Array2::from_shape_fn((40, 3), |(i, j)| ((i + j) as f32 * 0.11).cos());
            for detail in [false, true] {
                let mut probe = crate::probe::GradientProbe::new();
                probe.detail = detail;
                let mut guard = Guard::new(Some(&mut probe));
                let targets = Targets::Values(y.view());
                let loss = mlp.loss_and_grads_probed(x.view(), targets, Loss::Mse, Threads::new(2), Some(&mut guard));
                assert!(guard.finite);
                probe.after_backward(0, 0, loss, &mlp);
                let (got, want) = (probe.take().expect("a record"), crate::probe::record(0, 0, loss, &mlp));
                assert_eq!(got.layers.len(), 6);
                for (g, w) in got.layers.iter().zip(&want.layers) {
                    let bits = |s: &crate::probe::LayerStats| {
                        [s.act_mean, s.act_std, s.dact_mean, s.saturation, s.grad_b_norm, s.grad_z_norm, s.grad_h_norm]
                            .map(f64::to_bits)
                    };
                    assert_eq!((g.layer, bits(g)), (w.layer, bits(w)), "detail {detail}");
                    assert!(g.grad_z_norm > 0.0 && g.act_std > 0.0);
                    assert_eq!(g.act_p50.is_nan(), !detail);
                }
            }
        });
    }

    #[test]
    fn all_finite_split_sees_a_nan_in_either_half() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let n = 3 * crate::nn::simd::SPLIT_MIN_LEN / 2 + 5;
        assert!(pool.install(|| crate::nn::simd::split_point(n, crate::nn::simd::LINE)).is_some());
        assert!(pool.install(|| all_finite_split(&vec![1.0f32; n])));
        for at in [3, n / 2 + 1, n - 3] {
            let mut v = vec![1.0f32; n];
            v[at] = f32::INFINITY;
            assert!(!pool.install(|| all_finite_split(&v)), "∞ at {at}");
        }
    }

    #[test]
    fn all_finite_sees_every_position() {
        for len in [0usize, 1, 15, 16, 17, 100] {
            let mut v = vec![1.5f32; len];
            assert!(all_finite(&v));
            for i in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    v[i] = bad;
                    assert!(!all_finite(&v), "len {len}, {bad} at {i}");
                    v[i] = -0.0;
                }
            }
        }
    }

    /// The guard reads ∂L/∂W's finiteness from the product that stored it where the product can
    /// tell (f32 on an AVX-512 CPU) and scans it otherwise; either way it sees a ∂L/∂W that alone
    /// overflows (a huge input feature whose weights are zero: z, the loss and ∂L/∂b stay finite).
    #[test]
    fn the_guard_sees_an_overflowing_weight_gradient_alone() {
        let cfg = MlpConfig::uniform(8, 16, 3, 4, Activation::Tanh, Init::Pytorch);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for threads in [Threads::One, Threads::new(2)] {
            let mut mlp = cfg.init::<f32, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
            let mut x = Array2::from_shape_fn((32, 8), |(i, j)| ((i * 8 + j) as f32 * 0.37).sin());
            let y = Array2::from_shape_fn((32, 4), |(i, j)| 1e3 + (i + j) as f32);
            let run = |mlp: &mut Mlp<f32>, x: &Array2<f32>| {
                pool.install(|| {
                    let mut guard = Guard::new(None);
                    let t = Targets::Values(y.view());
                    let l = mlp.loss_and_grads_probed(x.view(), t, Loss::Mse, threads, Some(&mut guard));
                    (l, guard.finite)
                })
            };
            let (l, finite) = run(&mut mlp, &x);
            assert!(l.is_finite() && finite && grads_finite(&mlp), "{threads:?}");
            let own = crate::nn::sgemm::available();
            assert!(mlp.layers.iter().all(|l| l.grad_weight_finite() == own.then_some(true)), "{threads:?}");
            mlp.layers[0].weight.column_mut(5).fill(0.0);
            x.column_mut(5).fill(3e38);
            let (l, finite) = run(&mut mlp, &x);
            assert!(l.is_finite() && mlp.layers[0].grad_bias.iter().all(|g| g.is_finite()), "{threads:?}");
            assert!(!finite && !grads_finite(&mlp), "{threads:?}");
            assert_eq!(mlp.layers[0].grad_weight_finite(), own.then_some(false), "{threads:?}");
            assert_eq!(locate(&mlp, 0, l).unwrap().part, Part::Gradient);
        }
    }

    fn net() -> (Mlp<f64>, Array2<f64>, Array2<f64>) {
        let cfg = MlpConfig::uniform(3, 5, 3, 2, Activation::Relu, Init::Pytorch);
        let mlp = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as f64 - j as f64) * 0.3);
        let y = Array2::from_shape_fn((4, 2), |(i, j)| (i + j) as f64 * 0.1);
        (mlp, x, y)
    }

    #[test]
    fn locate_names_the_first_tensor() {
        let (mut mlp, x, y) = net();
        let mut guard = Guard::new(None);
        let l =
            mlp.loss_and_grads_probed(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One, Some(&mut guard));
        assert!(guard.finite && grads_finite(&mlp) && locate(&mlp, 0, l).is_none());
        // an infinite input feature: z of layer 0 is the first non-finite tensor
        let mut xi = x.clone();
        xi[[1, 2]] = f64::INFINITY;
        let mut guard = Guard::new(None);
        let l =
            mlp.loss_and_grads_probed(xi.view(), Targets::Values(y.view()), Loss::Mse, Threads::One, Some(&mut guard));
        assert!(!guard.finite && !grads_finite(&mlp));
        let at = locate(&mlp, 7, l).unwrap();
        assert_eq!((at.step, at.part, at.layer, at.tensor.as_deref()), (7, Part::Activation, Some(0), Some("z")));
        assert!(at.to_string().contains("step 7 in the forward pass, in z of layer 0"), "{at}");
        // a NaN target: the loss, then (with finite activations) nothing earlier
        let mut yn = y.clone();
        yn[[0, 0]] = f64::NAN;
        let l = mlp.loss_and_grads(x.view(), Targets::Values(yn.view()), Loss::Mse, Threads::One);
        assert_eq!(locate(&mlp, 1, l).unwrap().part, Part::Loss);
        // an overflowing gradient with a finite loss: the output layer's grad_z is the first
        let l = mlp.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One);
        mlp.grad_output_mut()[[0, 1]] = f64::INFINITY;
        mlp.zero_grad();
        mlp.backward(x.view(), Threads::One);
        assert!(!grads_finite(&mlp));
        let at = locate(&mlp, 2, l).unwrap();
        assert_eq!((at.part, at.layer, at.tensor.as_deref()), (Part::Gradient, Some(3), Some("grad_z")));
        // a non-finite weight comes before everything
        mlp.layers[2].bias[1] = f64::NAN;
        let at = locate(&mlp, 3, l).unwrap();
        assert_eq!((at.part, at.layer, at.tensor.as_deref()), (Part::Weight, Some(2), Some("bias")));
    }
}
