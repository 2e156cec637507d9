//! The time loop shared by the three cells: buffers, the per-step products, truncation, and
//! the per-step probe norms. The cells' own algebra is in `rnn.rs`, `lstm.rs`, `gru.rs`.

use super::{Cell, RecurrentLayer, add_column_sums, grow};
use crate::nn::{Activation, Scalar, Threads};
use ndarray::{ArrayView2, ArrayViewMut2};

/// Per-step state of one layer's last forward and backward pass, time-major, flat.
///
/// G gates, H hidden, B batch, T steps.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buffers<F> {
    /// T of the last pass.
    pub seq: usize,
    /// B of the last pass.
    pub batch: usize,
    /// a_t = x_t·W_ihᵀ + b_ih, `[T, B, G·H]`.
    pub pre: Vec<F>,
    /// Activated gates (LSTM i, f, g, o; GRU r, z, n), `[T, B, G·H]`; unused by the Elman cell.
    pub gates: Vec<F>,
    /// h_0 … h_T, `[T+1, B, H]`.
    pub h: Vec<F>,
    /// LSTM c_0 … c_T, `[T+1, B, H]`.
    pub c: Vec<F>,
    /// LSTM tanh(c_t); GRU W_hn h_{t−1} + b_hn; `[T, B, H]`.
    pub aux: Vec<F>,
    /// g_t = h_{t−1}·W_hhᵀ + b_hh of the current step, `[B, G·H]`.
    pub hg: Vec<F>,
    /// ∂L/∂h_t through the output path (head or the layer above), `[T, B, H]`.
    pub dy: Vec<F>,
    /// ∂L/∂a_t, `[T, B, G·H]`.
    pub dgi: Vec<F>,
    /// ∂L/∂g_t (GRU only; the other cells' equals ∂L/∂a_t), `[T, B, G·H]`.
    pub dgh: Vec<F>,
    /// ∂L/∂h_t, both paths, of the current step, `[B, H]`.
    pub dh: Vec<F>,
    /// ∂L/∂h_{t−1} through step t, `[B, H]`.
    pub dh_next: Vec<F>,
    /// LSTM ∂L/∂c, `[B, H]`.
    pub dc: Vec<F>,
    /// Probe: ‖∂L/∂h_t‖ (Frobenius over the batch), t = 1..T.
    pub grad_h_norm: Vec<f64>,
    /// Probe: LSTM ‖∂L/∂c_t‖.
    pub grad_c_norm: Vec<f64>,
    /// Probe: ‖∂L/∂x_t‖ of this layer's input.
    pub grad_x_norm: Vec<f64>,
    /// Probe: ‖∂L/∂h_0‖ (0 when truncation cut it).
    pub grad_h0_norm: f64,
}

impl<F: Scalar> Buffers<F> {
    pub fn reserve(&mut self, cell: Cell, seq: usize, batch: usize, h: usize, _inputs: usize) {
        (self.seq, self.batch) = (seq, batch);
        let gh = cell.gates() * h;
        let (tb, b) = (seq * batch, batch);
        grow(&mut self.pre, tb * gh);
        grow(&mut self.dgi, tb * gh);
        grow(&mut self.h, (seq + 1) * b * h);
        grow(&mut self.dy, tb * h);
        grow(&mut self.hg, b * gh);
        grow(&mut self.dh, b * h);
        grow(&mut self.dh_next, b * h);
        if cell != Cell::RnnTanh && cell != Cell::RnnRelu {
            grow(&mut self.gates, tb * gh);
            grow(&mut self.aux, tb * h);
        }
        if cell == Cell::Lstm {
            grow(&mut self.c, (seq + 1) * b * h);
            grow(&mut self.dc, b * h);
        }
        if cell == Cell::Gru {
            grow(&mut self.dgh, tb * gh);
        }
        for v in [&mut self.grad_h_norm, &mut self.grad_c_norm, &mut self.grad_x_norm] {
            if v.len() < seq {
                v.resize(seq, 0.0);
            }
        }
    }

    /// (h_0 … h_T, ∂L/∂h through the output path).
    pub fn output_and_dy(&mut self, t: usize, b: usize, h: usize) -> (&[F], &mut [F]) {
        (&self.h[..(t + 1) * b * h], &mut self.dy[..t * b * h])
    }

    /// h (then c) after steps k, 2k, … < T.
    pub fn boundary_states(&self, cell: Cell, k: usize, h: usize) -> Vec<F> {
        let (t, b) = (self.seq, self.batch);
        let mut out = Vec::new();
        let mut s = k;
        while s < t {
            out.extend_from_slice(&self.h[s * b * h..(s + 1) * b * h]);
            if cell == Cell::Lstm {
                out.extend_from_slice(&self.c[s * b * h..(s + 1) * b * h]);
            }
            s += k;
        }
        out
    }
}

/// The slices one forward step reads and writes (step t, whole batch).
pub(crate) struct Forward<'a, F> {
    /// a_t, `[B, G·H]`.
    pub a: &'a [F],
    /// g_t, `[B, G·H]`; scratch: the cell may overwrite it (with a_t + g_t).
    pub g: &'a mut [F],
    /// h_{t−1}, `[B, H]`.
    pub h_prev: &'a [F],
    /// c_{t−1} (LSTM; empty otherwise).
    pub c_prev: &'a [F],
    /// Activated gates out, `[B, G·H]` (empty for the Elman cell).
    pub gates: &'a mut [F],
    /// h_t out.
    pub h: &'a mut [F],
    /// c_t out (LSTM).
    pub c: &'a mut [F],
    /// LSTM tanh(c_t) / GRU W_hn h_{t−1} + b_hn, out.
    pub aux: &'a mut [F],
}

/// The slices one backward step reads and writes.
pub(crate) struct Backward<'a, F> {
    /// ∂L/∂h_t, both paths, `[B, H]`.
    pub dh: &'a [F],
    /// The gates of step t.
    pub gates: &'a [F],
    /// h_t.
    pub h: &'a [F],
    /// h_{t−1}.
    pub h_prev: &'a [F],
    /// c_{t−1} (LSTM).
    pub c_prev: &'a [F],
    /// aux of step t.
    pub aux: &'a [F],
    /// LSTM: in ∂L/∂c_t from step t+1, out ∂L/∂c_{t−1} through step t.
    pub dc: &'a mut [F],
    /// ∂L/∂a_t out.
    pub dgi: &'a mut [F],
    /// ∂L/∂g_t out (GRU).
    pub dgh: &'a mut [F],
    /// ∂L/∂h_{t−1} not through W_hh (GRU's z ⊙ ∂L/∂h_t), out.
    pub direct: &'a mut [F],
}

fn view<F>(s: &[F], shape: (usize, usize)) -> ArrayView2<'_, F> {
    ArrayView2::from_shape(shape, s).expect("gradscope internal error: buffer sized by reserve")
}

fn view_mut<F>(s: &mut [F], shape: (usize, usize)) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape(shape, s).expect("gradscope internal error: buffer sized by reserve")
}

fn fill_rows<F: Scalar>(dst: &mut [F], row: &[F]) {
    for chunk in dst.chunks_exact_mut(row.len()) {
        chunk.copy_from_slice(row);
    }
}

/// out = φ(z) through the vectorised kernels where the type has one (f32 sigmoid, tanh), else
/// the scalar definitions.
pub(crate) fn activate<F: Scalar>(phi: Activation, z: &[F], out: &mut [F]) {
    if !F::activation_fast(phi, z, out) {
        for (o, &z) in out.iter_mut().zip(z) {
            *o = phi.f(z);
        }
    }
}

/// Sum of squares in f64 (probe norms).
pub(crate) fn sum_sq<F: Scalar>(v: &[F]) -> f64 {
    let mut lanes = [0.0f64; 8];
    for chunk in v.chunks(8) {
        for (l, &x) in lanes.iter_mut().zip(chunk) {
            let x = x.f64();
            *l += x * x;
        }
    }
    lanes.iter().sum()
}

/// One layer's forward pass over the whole sequence (`input`: `[T·B, I]`).
pub(crate) fn forward_layer<F: Scalar>(
    cell: Cell,
    l: &mut RecurrentLayer<F>,
    input: ArrayView2<F>,
    detached: Option<(usize, &[F])>,
    threads: Threads,
) {
    let (t, b, h) = (l.buf.seq, l.buf.batch, l.hidden_size());
    let gh = cell.gates() * h;
    let (bh, bgh) = (b * h, b * gh);
    let buf = &mut l.buf;
    // a_t for every t at once: one product
    fill_rows(&mut buf.pre[..t * bgh], l.bias_ih.as_slice().expect("contiguous"));
    F::gemm(view_mut(&mut buf.pre[..t * bgh], (t * b, gh)), input, l.weight_ih.t(), true, threads);
    buf.h[..bh].fill(F::zero());
    if cell == Cell::Lstm {
        buf.c[..bh].fill(F::zero());
    }
    let per_state = if cell == Cell::Lstm { 2 * bh } else { bh };
    for s in 1..=t {
        // under `forward_detached`, the state entering a window is the recorded constant (the
        // computed h_{t−1} stays the output of step t − 1)
        let frozen = detached.and_then(|(k, states)| {
            (s > 1 && (s - 1) % k == 0).then(|| {
                let m = (s - 1) / k - 1;
                &states[m * per_state..(m + 1) * per_state]
            })
        });
        let (h_before, h_after) = buf.h.split_at_mut(s * bh);
        let h_prev = match frozen {
            Some(st) => &st[..bh],
            None => &h_before[(s - 1) * bh..],
        };
        // g_t = h_{t−1}·W_hhᵀ + b_hh: the one product per step
        fill_rows(&mut buf.hg[..bgh], l.bias_hh.as_slice().expect("contiguous"));
        F::gemm(view_mut(&mut buf.hg[..bgh], (b, gh)), view(h_prev, (b, h)), l.weight_hh.t(), true, threads);
        let (c_prev, c) = if cell == Cell::Lstm {
            let (before, after) = buf.c.split_at_mut(s * bh);
            let c_prev = match frozen {
                Some(st) => &st[bh..],
                None => &before[(s - 1) * bh..],
            };
            (c_prev, &mut after[..bh])
        } else {
            (&[][..], &mut [][..])
        };
        let gated = cell != Cell::RnnTanh && cell != Cell::RnnRelu;
        let step = Forward {
            a: &buf.pre[(s - 1) * bgh..s * bgh],
            g: &mut buf.hg[..bgh],
            h_prev,
            c_prev,
            gates: if gated { &mut buf.gates[(s - 1) * bgh..s * bgh] } else { &mut [] },
            h: &mut h_after[..bh],
            c,
            aux: if gated { &mut buf.aux[(s - 1) * bh..s * bh] } else { &mut [] },
        };
        match cell {
            Cell::RnnTanh | Cell::RnnRelu => super::rnn::forward_step(cell.nonlinearity(), step),
            Cell::Lstm => super::lstm::forward_step(h, step),
            Cell::Gru => super::gru::forward_step(h, step),
        }
    }
}

/// One layer's backward pass through time: from ∂L/∂h through the output path (`buf.dy`)
/// to the four tensors' gradients and, if given, ∂L/∂x (`dx`, `[T·B, I]`).
pub(crate) fn backward_layer<F: Scalar>(
    cell: Cell,
    l: &mut RecurrentLayer<F>,
    input: ArrayView2<F>,
    dx: Option<ArrayViewMut2<F>>,
    bptt: Option<usize>,
    probing: bool,
    threads: Threads,
) {
    let (t, b, h) = (l.buf.seq, l.buf.batch, l.hidden_size());
    let gh = cell.gates() * h;
    let (bh, bgh) = (b * h, b * gh);
    let gated = cell != Cell::RnnTanh && cell != Cell::RnnRelu;
    let buf = &mut l.buf;
    buf.dh_next[..bh].fill(F::zero());
    if cell == Cell::Lstm {
        buf.dc[..bh].fill(F::zero());
    }
    buf.grad_h0_norm = 0.0;
    for s in (1..=t).rev() {
        // ∂L/∂h_t = output path + the step after
        for ((d, &y), &n) in buf.dh[..bh].iter_mut().zip(&buf.dy[(s - 1) * bh..s * bh]).zip(&buf.dh_next[..bh]) {
            *d = y + n;
        }
        if probing {
            buf.grad_h_norm[s - 1] = sum_sq(&buf.dh[..bh]).sqrt();
        }
        let step = Backward {
            dh: &buf.dh[..bh],
            gates: if gated { &buf.gates[(s - 1) * bgh..s * bgh] } else { &[] },
            h: &buf.h[s * bh..(s + 1) * bh],
            h_prev: &buf.h[(s - 1) * bh..s * bh],
            c_prev: if cell == Cell::Lstm { &buf.c[(s - 1) * bh..s * bh] } else { &[] },
            aux: if gated { &buf.aux[(s - 1) * bh..s * bh] } else { &[] },
            dc: if cell == Cell::Lstm { &mut buf.dc[..bh] } else { &mut [] },
            dgi: &mut buf.dgi[(s - 1) * bgh..s * bgh],
            dgh: if cell == Cell::Gru { &mut buf.dgh[(s - 1) * bgh..s * bgh] } else { &mut [] },
            direct: &mut buf.dh_next[..bh],
        };
        let dc_norm = match cell {
            Cell::RnnTanh | Cell::RnnRelu => {
                super::rnn::backward_step(cell.nonlinearity(), step);
                0.0
            }
            Cell::Lstm => super::lstm::backward_step(h, step, probing),
            Cell::Gru => {
                super::gru::backward_step(h, step);
                0.0
            }
        };
        if probing && cell == Cell::Lstm {
            buf.grad_c_norm[s - 1] = dc_norm;
        }
        // truncated BPTT: h_{t−1} is a constant to step t when t − 1 is a multiple of K
        if bptt.is_some_and(|k| (s - 1) % k == 0) {
            buf.dh_next[..bh].fill(F::zero());
            if cell == Cell::Lstm {
                buf.dc[..bh].fill(F::zero());
            }
            continue;
        }
        // ∂L/∂h_{t−1} = ∂L/∂g_t · W_hh (+ the GRU's direct path, already in dh_next)
        let dg = if cell == Cell::Gru { &buf.dgh[(s - 1) * bgh..s * bgh] } else { &buf.dgi[(s - 1) * bgh..s * bgh] };
        F::gemm(
            view_mut(&mut buf.dh_next[..bh], (b, h)),
            view(dg, (b, gh)),
            l.weight_hh.view(),
            cell == Cell::Gru,
            threads,
        );
        if s == 1 && probing {
            buf.grad_h0_norm = sum_sq(&buf.dh_next[..bh]).sqrt();
        }
    }
    // the tensors' gradients, all steps at once
    let dgi = view(&buf.dgi[..t * bgh], (t * b, gh));
    let dgh = if cell == Cell::Gru { view(&buf.dgh[..t * bgh], (t * b, gh)) } else { dgi };
    F::gemm(l.grad_weight_ih.view_mut(), dgi.t(), input, true, threads);
    add_column_sums(&mut l.grad_bias_ih, dgi);
    F::gemm(l.grad_weight_hh.view_mut(), dgh.t(), view(&buf.h[..t * bh], (t * b, h)), true, threads);
    add_column_sums(&mut l.grad_bias_hh, dgh);
    if let Some(mut dx) = dx {
        F::gemm(dx.view_mut(), dgi, l.weight_ih.view(), false, threads);
        if probing {
            let i = dx.ncols();
            let flat = dx.as_slice().expect("contiguous");
            for s in 0..t {
                buf.grad_x_norm[s] = sum_sq(&flat[s * b * i..(s + 1) * b * i]).sqrt();
            }
        }
    }
}
