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
use crate::nn::{Activation, Scalar, simd};
use multiversion::multiversion;

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
        cell_state(&gates[..3 * hidden], &s.c_prev[b * hidden..(b + 1) * hidden], c);
        activate(Activation::Tanh, c, tc);
        simd::mul(h, &gates[3 * hidden..], tc);
    }
}

/// c_t = f ⊙ c_{t−1} + i ⊙ g for one batch row (`gates`: i, f, g), compiled per instruction set.
#[multiversion(targets = "simd")]
fn cell_state<F: Scalar>(gates: &[F], c_prev: &[F], c: &mut [F]) {
    let h = c.len();
    let (i, f, g, c_prev) = (&gates[..h], &gates[h..2 * h], &gates[2 * h..3 * h], &c_prev[..h]);
    for j in 0..h {
        c[j] = f[j] * c_prev[j] + i[j] * g[j];
    }
}

/// ∂L/∂a_t of one step; `s.dc` goes from ∂L/∂c_t (step t+1's share) to ∂L/∂c_{t−1}.
/// Returns ‖∂L/∂c_t‖² of these rows when `norm` (the probe), else 0.
pub(crate) fn backward_step<F: Scalar>(hidden: usize, s: Backward<'_, F>, norm: bool) -> f64 {
    let gh = 4 * hidden;
    let mut sq = 0.0;
    for (b, dc) in s.dc.chunks_exact_mut(hidden).enumerate() {
        let rows = Row {
            gates: &s.gates[b * gh..(b + 1) * gh],
            dh: &s.dh[b * hidden..(b + 1) * hidden],
            tc: &s.aux[b * hidden..(b + 1) * hidden],
            c_prev: &s.c_prev[b * hidden..(b + 1) * hidden],
        };
        let d = &mut s.dgi[b * gh..(b + 1) * gh];
        if norm {
            sq += backward_row_probed(rows, dc, d);
        } else {
            backward_row(rows, dc, d);
        }
    }
    sq
}

/// One batch row's inputs to the backward step, each `[H]` (gates `[4H]`).
#[derive(Clone, Copy)]
struct Row<'a, F> {
    gates: &'a [F],
    dh: &'a [F],
    tc: &'a [F],
    c_prev: &'a [F],
}

/// The backward step of one batch row, gate by gate in slices of exactly H, so that the loop
/// has no bounds checks and vectorises; compiled per instruction set (`nn::simd`'s reason).
/// The same operations in the same order as the probed twin below: the same bits.
#[multiversion(targets = "simd")]
fn backward_row<F: Scalar>(r: Row<'_, F>, dc: &mut [F], d: &mut [F]) {
    let h = dc.len();
    let one = F::one();
    let (i, f, g, o) = (&r.gates[..h], &r.gates[h..2 * h], &r.gates[2 * h..3 * h], &r.gates[3 * h..4 * h]);
    let (dh, tc, c_prev) = (&r.dh[..h], &r.tc[..h], &r.c_prev[..h]);
    let (di, rest) = d.split_at_mut(h);
    let (df, rest) = rest.split_at_mut(h);
    let (dg, d_o) = rest.split_at_mut(h);
    let d_o = &mut d_o[..h];
    for j in 0..h {
        let d_out = dh[j] * tc[j];
        let dct = dc[j] + dh[j] * o[j] * (one - tc[j] * tc[j]);
        let (d_i, d_f, d_g) = (dct * g[j], dct * c_prev[j], dct * i[j]);
        dc[j] = dct * f[j];
        di[j] = d_i * i[j] * (one - i[j]);
        df[j] = d_f * f[j] * (one - f[j]);
        dg[j] = d_g * (one - g[j] * g[j]);
        d_o[j] = d_out * o[j] * (one - o[j]);
    }
}

/// [`backward_row`] that also returns Σ_j (∂L/∂c_t)² in f64 (the probe's ‖∂L/∂c_t‖²).
fn backward_row_probed<F: Scalar>(r: Row<'_, F>, dc: &mut [F], d: &mut [F]) -> f64 {
    let h = dc.len();
    let mut sq = 0.0;
    for (j, &v) in dc.iter().enumerate() {
        let dct = v + r.dh[j] * r.gates[3 * h + j] * (F::one() - r.tc[j] * r.tc[j]);
        sq += dct.f64() * dct.f64();
    }
    backward_row(r, dc, d);
    sq
}
