//! The GRU cell, as `nn.GRU` (Cho et al. 2014); gate blocks in PyTorch's order r, z, n, and
//! the reset gate multiplying W_hn h + b_hn (PyTorch's form, not the paper's r ⊙ h inside).
//!
//! ```text
//! forward    r = σ(a_r + g_r)     z = σ(a_z + g_z)     (g_t = h_{t−1}·W_hhᵀ + b_hh, [B, 3H])
//!            n = tanh(a_n + r ⊙ g_n)                   (g_n = W_hn h_{t−1} + b_hn, kept)
//!            h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
//! backward   ∂L/∂n = ∂L/∂h_t ⊙ (1 − z)     ∂L/∂z = ∂L/∂h_t ⊙ (h_{t−1} − n)
//!            ∂L/∂ñ = ∂L/∂n ⊙ (1 − n²)      (ñ = n's pre-activation)
//!            ∂L/∂a_n = ∂L/∂ñ               ∂L/∂g_n = ∂L/∂ñ ⊙ r      ∂L/∂r = ∂L/∂ñ ⊙ g_n
//!            ∂L/∂a_r = ∂L/∂g_r = ∂L/∂r ⊙ r(1 − r)
//!            ∂L/∂a_z = ∂L/∂g_z = ∂L/∂z ⊙ z(1 − z)
//!            ∂L/∂h_{t−1} = ∂L/∂h_t ⊙ z (direct)  + ∂L/∂g_t · W_hh   (cell.rs)
//! ```

use super::cell::{Backward, Forward, activate};
use crate::nn::{Activation, Scalar};

/// r, z, n, g_n and h_t of one step (H = `hidden`); g_t is overwritten with the
/// pre-activations. The sigmoids and the tanh run row by row through [`activate`] (vectorised
/// in f32).
pub(crate) fn forward_step<F: Scalar>(hidden: usize, s: Forward<'_, F>) {
    let (gh, one) = (3 * hidden, F::one());
    for (b, (h, hn)) in s.h.chunks_exact_mut(hidden).zip(s.aux.chunks_exact_mut(hidden)).enumerate() {
        let (a, z) = (&s.a[b * gh..(b + 1) * gh], &mut s.g[b * gh..(b + 1) * gh]);
        let gates = &mut s.gates[b * gh..(b + 1) * gh];
        for j in 0..2 * hidden {
            z[j] += a[j];
        }
        activate(Activation::Sigmoid, &z[..2 * hidden], &mut gates[..2 * hidden]); // r, z
        // keep g_n = W_hn h + b_hn, then n's pre-activation a_n + r ⊙ g_n in its place
        hn.copy_from_slice(&z[2 * hidden..]);
        for j in 0..hidden {
            z[2 * hidden + j] = a[2 * hidden + j] + gates[j] * hn[j];
        }
        activate(Activation::Tanh, &z[2 * hidden..], &mut gates[2 * hidden..]);
        let h_prev = &s.h_prev[b * hidden..(b + 1) * hidden];
        for j in 0..hidden {
            let (zg, n) = (gates[hidden + j], gates[2 * hidden + j]);
            h[j] = (one - zg) * n + zg * h_prev[j];
        }
    }
}

/// ∂L/∂a_t, ∂L/∂g_t and the direct ∂L/∂h_{t−1} = ∂L/∂h_t ⊙ z of one step.
pub(crate) fn backward_step<F: Scalar>(hidden: usize, s: Backward<'_, F>) {
    let (gh, one) = (3 * hidden, F::one());
    for (b, direct) in s.direct.chunks_exact_mut(hidden).enumerate() {
        let gates = &s.gates[b * gh..(b + 1) * gh];
        let (di, dg) = (&mut s.dgi[b * gh..(b + 1) * gh], &mut s.dgh[b * gh..(b + 1) * gh]);
        let (dh, hn, h_prev) = (
            &s.dh[b * hidden..(b + 1) * hidden],
            &s.aux[b * hidden..(b + 1) * hidden],
            &s.h_prev[b * hidden..(b + 1) * hidden],
        );
        for j in 0..hidden {
            let (r, z, n) = (gates[j], gates[hidden + j], gates[2 * hidden + j]);
            let dn = dh[j] * (one - z);
            let dz = dh[j] * (h_prev[j] - n);
            let dn_pre = dn * (one - n * n);
            let dr = dn_pre * hn[j];
            let (dr_pre, dz_pre) = (dr * r * (one - r), dz * z * (one - z));
            (di[j], di[hidden + j], di[2 * hidden + j]) = (dr_pre, dz_pre, dn_pre);
            (dg[j], dg[hidden + j], dg[2 * hidden + j]) = (dr_pre, dz_pre, dn_pre * r);
            direct[j] = dh[j] * z;
        }
    }
}
