//! Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019) as `torch.optim.Adam` and
//! `torch.optim.AdamW` compute them (amsgrad off):
//!
//! ```text
//! AdamW: θ ← θ·(1 − lr·λ)           Adam: g ← g + λ·θ
//! t ← t + 1
//! m ← β₁·m + (1 − β₁)·g
//! v ← β₂·v + (1 − β₂)·g²
//! θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```

use super::apply_update;
use crate::nn::Scalar;

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// β₁ (default 0.9).
    pub beta1: f64,
    /// β₂ (default 0.999).
    pub beta2: f64,
    /// ε (default 1e-8).
    pub eps: f64,
    /// λ.
    pub weight_decay: f64,
    /// true for AdamW's decoupled decay, false for Adam's L2 penalty.
    pub decoupled: bool,
}

/// Adam's state for one tensor.
#[derive(Clone, Debug)]
pub struct AdamState<F> {
    /// Steps taken, t.
    pub step: u64,
    /// First moment m.
    pub exp_avg: Vec<F>,
    /// Second moment v.
    pub exp_avg_sq: Vec<F>,
}

impl<F: Scalar> AdamState<F> {
    /// Zero moments for a tensor of `len` entries.
    pub fn new(len: usize) -> Self {
        Self { step: 0, exp_avg: vec![F::zero(); len], exp_avg_sq: vec![F::zero(); len] }
    }
}

impl Adam {
    /// One update of `param` from `grad`; with `measure`, returns `[‖Δθ‖², ‖θ‖², ‖g‖²]`.
    pub fn step<F: Scalar>(
        &self,
        lr: f64,
        param: &mut [F],
        grad: &[F],
        state: &mut AdamState<F>,
        measure: bool,
    ) -> [f64; 3] {
        state.step += 1;
        let t = state.step as i32;
        let bias_correction1 = 1.0 - self.beta1.powi(t);
        let bias_correction2 = 1.0 - self.beta2.powi(t);
        let step_size = F::of(lr / bias_correction1);
        let bc2_sqrt = F::of(bias_correction2.sqrt());
        // 1 − β is formed in f64 and then rounded, as PyTorch passes it (a Python float) to
        // lerp_/addcmul_; 1 − β rounded-in-f32 would be 1.3e-5 off for β₂ = 0.999.
        let (b2, eps, wd) = (F::of(self.beta2), F::of(self.eps), F::of(self.weight_decay));
        let (one_minus_b1, one_minus_b2) = (F::of(1.0 - self.beta1), F::of(1.0 - self.beta2));
        let decay = F::of(1.0 - lr * self.weight_decay);
        let (has_decay, decoupled) = (self.weight_decay != 0.0, self.decoupled);
        apply_update(param, grad, &mut state.exp_avg, &mut state.exp_avg_sq, measure, |mut p, mut g, m, v| {
            if has_decay {
                if decoupled {
                    p *= decay;
                } else {
                    g += wd * p;
                }
            }
            // torch: exp_avg.lerp_(grad, 1 - beta1)  ==  m + (1−β₁)(g − m)
            *m += one_minus_b1 * (g - *m);
            *v = *v * b2 + one_minus_b2 * g * g;
            let denom = v.sqrt() / bc2_sqrt + eps;
            p - step_size * (*m / denom)
        })
    }
}
