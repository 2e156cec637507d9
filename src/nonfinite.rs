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

use crate::nn::{ForwardView, LayerView, Mlp, Scalar};
use crate::optim::ParamNorms;
use crate::probe::Probe;
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

/// Lanes of the finiteness check.
const LANES: usize = 16;

/// True when every entry of `v` is finite (branch-free, vectorised).
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
pub fn all_finite<F: Scalar>(v: &[F]) -> bool {
    let mut lanes = [F::zero(); LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in lanes.iter_mut().zip(c) {
            *a += x * F::zero();
        }
    }
    for &x in rest {
        lanes[0] += x * F::zero();
    }
    lanes.iter().fold(F::zero(), |s, &a| s + a).is_finite()
}

/// True when every parameter gradient of the last backward pass is finite.
pub fn grads_finite<F: Scalar>(mlp: &Mlp<F>) -> bool {
    mlp.layers.iter().all(|l| {
        all_finite(l.grad_weight.as_slice().expect("grads are contiguous"))
            && all_finite(l.grad_bias.as_slice().expect("grads are contiguous"))
    })
}

/// A probe that checks each layer's parameter gradients as soon as the backward pass has made
/// them (while they are still in cache), and passes every call on to an inner probe. The
/// training loop attaches one at every step.
pub struct Guard<'a, F: Scalar> {
    /// The probe of a probed step, if any.
    pub inner: Option<&'a mut dyn Probe<F>>,
    /// False once some parameter gradient held a NaN or infinity.
    pub finite: bool,
}

impl<'a, F: Scalar> Guard<'a, F> {
    /// A guard around `inner`, nothing seen yet.
    pub fn new(inner: Option<&'a mut dyn Probe<F>>) -> Self {
        Self { inner, finite: true }
    }
}

impl<F: Scalar> Probe<F> for Guard<'_, F> {
    fn after_layer_forward(&mut self, v: &ForwardView<'_, F>) {
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_layer_forward(v);
        }
    }

    fn after_layer_backward(&mut self, v: &LayerView<'_, F>) {
        let l = v.linear;
        self.finite &= all_finite(l.grad_weight.as_slice().expect("grads are contiguous"))
            && all_finite(l.grad_bias.as_slice().expect("grads are contiguous"));
        // a norm layer's γ, β and a residual projection are updated too
        if let Some(n) = v.norm {
            self.finite &= all_finite(n.grad_weight.as_slice().expect("grads are contiguous"))
                && all_finite(n.grad_bias.as_slice().expect("grads are contiguous"));
        }
        if let Some(p) = v.shortcut {
            self.finite &= all_finite(p.grad_weight.as_slice().expect("grads are contiguous"))
                && all_finite(p.grad_bias.as_slice().expect("grads are contiguous"));
        }
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_layer_backward(v);
        }
    }

    fn after_backward(&mut self, step: u64, epoch: u64, loss: f64, mlp: &Mlp<F>) {
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_backward(step, epoch, loss, mlp);
        }
    }

    fn after_update(&mut self, mlp: &Mlp<F>, norms: &ParamNorms) {
        if let Some(p) = self.inner.as_deref_mut() {
            p.after_update(mlp, norms);
        }
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
    for (l, layer) in mlp.layers.iter().enumerate() {
        if bad(layer.weight.iter()) {
            return at(Part::Weight, l, "weight");
        }
        if bad(layer.bias.iter()) {
            return at(Part::Weight, l, "bias");
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
        if bad(v.linear.grad_weight.iter()) {
            return at(Part::Gradient, l, "grad_weight");
        }
        if bad(v.linear.grad_bias.iter()) {
            return at(Part::Gradient, l, "grad_bias");
        }
        if let Some(norm) = v.norm
            && (bad(norm.grad_weight.iter()) || bad(norm.grad_bias.iter()))
        {
            return at(Part::Gradient, l, "norm_grad");
        }
        if let Some(p) = v.shortcut
            && (bad(p.grad_weight.iter()) || bad(p.grad_bias.iter()))
        {
            return at(Part::Gradient, l, "shortcut_grad");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Init, Loss, MlpConfig, Targets, Threads};
    use ndarray::Array2;
    use rand::SeedableRng;

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
