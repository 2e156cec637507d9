//! The LSTM cell, as `nn.LSTM` (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et
//! al. 2000); gate blocks in PyTorch's order i, f, g, o.
//!
//! ```text
//! forward    [i f g o] = a_t + g_t               (pre-activations, [B, 4H])
//!            i = σ(·)  f = σ(·)  g = tanh(·)  o = σ(·)
//!            c_t = f ⊙ c_{t−1} + i ⊙ g           h_t = o ⊙ tanh(c_t)
//! backward   ∂L/∂o   = ∂L/∂h_t ⊙ tanh(c_t)
//!            ∂L/∂c_t = ∂L/∂c_t(from t+1) + ∂L/∂h_t ⊙ o ⊙ (1 − tanh²(c_t))
//!            ∂L/∂i   = ∂L/∂c_t ⊙ g       ∂L/∂g = ∂L/∂c_t ⊙ i       ∂L/∂f = ∂L/∂c_t ⊙ c_{t−1}
//!            ∂L/∂c_{t−1} (through step t) = ∂L/∂c_t ⊙ f
//!            pre-activations: ∂L/∂i·i(1−i), ∂L/∂f·f(1−f), ∂L/∂g·(1−g²), ∂L/∂o·o(1−o)
//!            ∂L/∂a_t = ∂L/∂g_t = [those four]
//! ```
//! The cell path c_{t−1} → c_t multiplies the gradient by f alone (no W_hh, no φ′): the
//! "constant error carousel" that lets an LSTM keep a gradient over many steps when f ≈ 1.

use super::cell::{Backward, Forward, activate};
use crate::nn::{Activation, Scalar};

/// Gates, c_t, tanh(c_t), h_t of one step (H = `hidden`); g_t is overwritten with the
/// pre-activations. The sigmoids and tanhs run row by row through [`activate`] (vectorised in
/// f32).
pub(crate) fn forward_step<F: Scalar>(hidden: usize, s: Forward<'_, F>) {
    let gh = 4 * hidden;
    for (g, &a) in s.g.iter_mut().zip(s.a) {
        *g += a;
    }
    for (b, ((h, c), tc)) in
        s.h.chunks_exact_mut(hidden).zip(s.c.chunks_exact_mut(hidden)).zip(s.aux.chunks_exact_mut(hidden)).enumerate()
    {
        let z = &s.g[b * gh..(b + 1) * gh];
        let gates = &mut s.gates[b * gh..(b + 1) * gh];
        activate(Activation::Sigmoid, &z[..2 * hidden], &mut gates[..2 * hidden]); // i, f
        activate(Activation::Tanh, &z[2 * hidden..3 * hidden], &mut gates[2 * hidden..3 * hidden]); // g
        activate(Activation::Sigmoid, &z[3 * hidden..], &mut gates[3 * hidden..]); // o
        let c_prev = &s.c_prev[b * hidden..(b + 1) * hidden];
        let (i, f, gg) = (&gates[..hidden], &gates[hidden..2 * hidden], &gates[2 * hidden..3 * hidden]);
        for j in 0..hidden {
            c[j] = f[j] * c_prev[j] + i[j] * gg[j];
        }
        activate(Activation::Tanh, c, tc);
        for ((h, &o), &tc) in h.iter_mut().zip(&gates[3 * hidden..]).zip(tc.iter()) {
            *h = o * tc;
        }
    }
}

/// ∂L/∂a_t of one step; `s.dc` goes from ∂L/∂c_t (step t+1's share) to ∂L/∂c_{t−1}.
/// Returns ‖∂L/∂c_t‖ when `norm` (the probe), else 0.
pub(crate) fn backward_step<F: Scalar>(hidden: usize, s: Backward<'_, F>, norm: bool) -> f64 {
    let (gh, one) = (4 * hidden, F::one());
    let mut sq = 0.0;
    for (b, dc) in s.dc.chunks_exact_mut(hidden).enumerate() {
        let gates = &s.gates[b * gh..(b + 1) * gh];
        let d = &mut s.dgi[b * gh..(b + 1) * gh];
        let (dh, tc, c_prev) = (
            &s.dh[b * hidden..(b + 1) * hidden],
            &s.aux[b * hidden..(b + 1) * hidden],
            &s.c_prev[b * hidden..(b + 1) * hidden],
        );
        for j in 0..hidden {
            let (i, f, g, o) = (gates[j], gates[hidden + j], gates[2 * hidden + j], gates[3 * hidden + j]);
            let d_o = dh[j] * tc[j];
            let dct = dc[j] + dh[j] * o * (one - tc[j] * tc[j]);
            if norm {
                sq += dct.f64() * dct.f64();
            }
            let (d_i, d_f, d_g) = (dct * g, dct * c_prev[j], dct * i);
            dc[j] = dct * f;
            d[j] = d_i * i * (one - i);
            d[hidden + j] = d_f * f * (one - f);
            d[2 * hidden + j] = d_g * (one - g * g);
            d[3 * hidden + j] = d_o * o * (one - o);
        }
    }
    sq.sqrt()
}
