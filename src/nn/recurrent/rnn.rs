//! The Elman cell, as `nn.RNN`: h_t = φ(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh), φ = tanh or relu.
//!
//! ```text
//! forward    h_t      = φ(a_t + g_t)
//! backward   ∂L/∂a_t  = ∂L/∂g_t = ∂L/∂h_t ⊙ φ′        φ′ = 1 − h_t² (tanh), [h_t > 0] (relu)
//!            ∂L/∂h_{t−1} = ∂L/∂g_t · W_hh             (cell.rs)
//! ```
//! The per-step Jacobian ∂h_t/∂h_{t−1} = diag(φ′)·W_hh: its norm is at most γ·σ_max(W_hh) with
//! γ = sup φ′ = 1, which is Pascanu, Mikolov & Bengio's (2013) condition for vanishing.

use super::cell::{Backward, Forward, activate};
use crate::nn::{Activation, Scalar};

/// h_t from a_t, g_t (g_t overwritten with the pre-activation).
pub(crate) fn forward_step<F: Scalar>(phi: Activation, s: Forward<'_, F>) {
    for (g, &a) in s.g.iter_mut().zip(s.a) {
        *g += a;
    }
    activate(phi, s.g, s.h);
}

/// ∂L/∂a_t = ∂L/∂h_t ⊙ φ′, φ′ from the output as PyTorch computes it.
pub(crate) fn backward_step<F: Scalar>(phi: Activation, s: Backward<'_, F>) {
    let one = F::one();
    match phi {
        Activation::Relu => {
            for ((d, &dh), &h) in s.dgi.iter_mut().zip(s.dh).zip(s.h) {
                *d = if h > F::zero() { dh } else { F::zero() };
            }
        }
        _ => {
            for ((d, &dh), &h) in s.dgi.iter_mut().zip(s.dh).zip(s.h) {
                *d = dh * (one - h * h);
            }
        }
    }
}
