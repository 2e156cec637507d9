//! SGD as `torch.optim.SGD` computes it (dampening 0):
//!
//! ```text
//! g ← g + λ·θ                       (weight_decay λ)
//! b ← g at the first step, else μ·b + g   (momentum μ > 0)
//! g ← g + μ·b if nesterov, else b
//! θ ← θ − lr·g
//! ```
//! Sutskever et al. 2013 for the momentum forms.

use super::apply_update;
use crate::nn::{Scalar, simd};

/// SGD's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// μ; 0 disables momentum.
    pub momentum: f64,
    /// Nesterov momentum (needs μ > 0).
    pub nesterov: bool,
    /// L2 penalty λ added to the gradient.
    pub weight_decay: f64,
}

/// SGD's state for one tensor: the momentum buffer, empty until the first step.
#[derive(Clone, Debug, Default)]
pub struct SgdState<F> {
    /// The momentum buffer b (empty when momentum is 0 or before the first step).
    pub momentum_buffer: Vec<F>,
}

impl<F: Scalar> SgdState<F> {
    /// No buffer yet; it is made at the first step, as PyTorch does.
    pub fn new(_len: usize) -> Self {
        Self { momentum_buffer: Vec::new() }
    }
}

impl Sgd {
    /// One update of `param` from `grad`; with `measure`, returns `[‖Δθ‖², ‖θ‖², ‖g‖²]`.
    pub fn step<F: Scalar>(
        &self,
        lr: F,
        param: &mut [F],
        grad: &[F],
        state: &mut SgdState<F>,
        measure: bool,
    ) -> [f64; 3] {
        let wd = F::of(self.weight_decay);
        let mu = F::of(self.momentum);
        let first = state.momentum_buffer.is_empty();
        if self.momentum != 0.0 && first {
            state.momentum_buffer.resize(param.len(), F::zero());
        }
        let (decay, momentum, nesterov) = (self.weight_decay != 0.0, self.momentum != 0.0, self.nesterov);
        let buf: &mut [F] = if momentum { &mut state.momentum_buffer } else { &mut [] };
        // one loop per combination, so that each inner loop is branch-free and vectorises
        match (decay, momentum, first) {
            // the plain update, unmeasured: one loop cloned per instruction set (the same bits)
            (false, false, _) if !measure => {
                simd::sgd_split(param, grad, lr);
                [0.0; 3]
            }
            // measured: its own loop too, with the bits of `apply_update`'s (simd::sgd_measured),
            // but for a large tensor on two threads, measured by halves
            (false, false, _) => simd::sgd_measured_split(param, grad, lr),
            (true, false, _) => {
                apply_update(param, grad, &mut [], &mut [], measure, |p, g, _, _| p - lr * (g + wd * p))
            }
            (_, true, _) => apply_update(param, grad, buf, &mut [], measure, |p, g, b, _| {
                let g = if decay { g + wd * p } else { g };
                *b = if first { g } else { mu * *b + g };
                p - lr * if nesterov { g + mu * *b } else { *b }
            }),
        }
    }
}
