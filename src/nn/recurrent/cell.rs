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
    /// a_t = x_t·W_ihᵀ + b_ih, `[T, B, G·H]`; for the Elman cell and the LSTM, b_hh is added
    /// too and each step then adds h_{t−1}·W_hhᵀ in place: the pre-activation of step t.
    pub pre: Vec<F>,
    /// b_ih + b_hh, `[G·H]` (Elman cell and LSTM).
    pub bias: Vec<F>,
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
        grow(&mut self.bias, gh);
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
    /// a_t, `[B, G·H]`; empty when `g` already holds a_t + g_t (Elman cell, LSTM).
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
    let b_ih = l.bias_ih.as_slice().expect("contiguous");
    // the Elman cell and the LSTM add a_t and g_t before anything else, so both biases go in
    // first and each step's product accumulates onto a_t in place (no per-step bias fill, no
    // addition pass); the GRU keeps them apart (its n gate multiplies W_hn h + b_hn by r)
    let fused = cell != Cell::Gru;
    if fused {
        for ((s, &x), &y) in buf.bias[..gh].iter_mut().zip(b_ih).zip(l.bias_hh.as_slice().expect("contiguous")) {
            *s = x + y;
        }
        crate::nn::simd::fill_rows(&mut buf.pre[..t * bgh], &buf.bias[..gh]);
    } else {
        crate::nn::simd::fill_rows(&mut buf.pre[..t * bgh], b_ih);
    }
    // a_t for every t at once: one product
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
        // g_t = h_{t−1}·W_hhᵀ (+ b_hh): the one product per step, onto a_t when fused
        let (a, g): (&[F], &mut [F]) = if fused {
            (&[], &mut buf.pre[(s - 1) * bgh..s * bgh])
        } else {
            crate::nn::simd::fill_rows(&mut buf.hg[..bgh], l.bias_hh.as_slice().expect("contiguous"));
            (&buf.pre[(s - 1) * bgh..s * bgh], &mut buf.hg[..bgh])
        };
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
            a,
            g,
            h_prev,
            c_prev,
            gates: if gated { &mut buf.gates[(s - 1) * bgh..s * bgh] } else { &mut [] },
            h: &mut h_after[..bh],
            c,
            aux: if gated { &mut buf.aux[(s - 1) * bh..s * bh] } else { &mut [] },
        };
        forward_rows(cell, h, l.weight_hh.view(), step, b, threads.count().min(b));
    }
}

/// The row split of a step: rows of the batch are independent within a time step, so `parts`
/// threads each take a block of rows through the step's product and the cell (one join per
/// step, the elementwise work split too, rather than a split product and a serial cell).
/// One part is exactly the serial step.
fn forward_rows<F: Scalar>(cell: Cell, h: usize, w_hh: ArrayView2<F>, s: Forward<'_, F>, rows: usize, parts: usize) {
    if parts <= 1 || rows < 2 {
        let gh = cell.gates() * h;
        F::gemm_seq(view_mut(&mut *s.g, (rows, gh)), view(s.h_prev, (rows, h)), w_hh.t(), true);
        match cell {
            Cell::RnnTanh | Cell::RnnRelu => super::rnn::forward_step(cell.nonlinearity(), s),
            Cell::Lstm => super::lstm::forward_step(h, s),
            Cell::Gru => super::gru::forward_step(h, s),
        }
        return;
    }
    let (left, mid) = (parts / 2, rows * (parts / 2) / parts);
    let (s1, s2) = s.split(rows, mid);
    crate::nn::par::join(
        || forward_rows(cell, h, w_hh, s1, mid, left),
        || forward_rows(cell, h, w_hh, s2, rows - mid, parts - left),
    );
}

/// Splits a batch slice of `rows` equal rows after row `at` (an empty slice stays empty).
fn cut<T>(v: &[T], rows: usize, at: usize) -> (&[T], &[T]) {
    v.split_at(v.len() / rows * at)
}

/// [`cut`], writable.
fn cut_mut<T>(v: &mut [T], rows: usize, at: usize) -> (&mut [T], &mut [T]) {
    let w = v.len() / rows;
    v.split_at_mut(w * at)
}

impl<'a, F> Forward<'a, F> {
    /// Rows `..at` and `at..` of every slice.
    fn split(self, rows: usize, at: usize) -> (Self, Self) {
        let (a1, a2) = cut(self.a, rows, at);
        let (g1, g2) = cut_mut(self.g, rows, at);
        let (hp1, hp2) = cut(self.h_prev, rows, at);
        let (cp1, cp2) = cut(self.c_prev, rows, at);
        let (ga1, ga2) = cut_mut(self.gates, rows, at);
        let (h1, h2) = cut_mut(self.h, rows, at);
        let (c1, c2) = cut_mut(self.c, rows, at);
        let (x1, x2) = cut_mut(self.aux, rows, at);
        (
            Forward { a: a1, g: g1, h_prev: hp1, c_prev: cp1, gates: ga1, h: h1, c: c1, aux: x1 },
            Forward { a: a2, g: g2, h_prev: hp2, c_prev: cp2, gates: ga2, h: h2, c: c2, aux: x2 },
        )
    }
}

impl<'a, F> Backward<'a, F> {
    /// The same slices, borrowed again (for the cell, which takes the step by value).
    fn reborrow(&mut self) -> Backward<'_, F> {
        Backward {
            dh: self.dh,
            gates: self.gates,
            h: self.h,
            h_prev: self.h_prev,
            c_prev: self.c_prev,
            aux: self.aux,
            dc: &mut *self.dc,
            dgi: &mut *self.dgi,
            dgh: &mut *self.dgh,
            direct: &mut *self.direct,
        }
    }

    /// Rows `..at` and `at..` of every slice.
    fn split(self, rows: usize, at: usize) -> (Self, Self) {
        let (dh1, dh2) = cut(self.dh, rows, at);
        let (g1, g2) = cut(self.gates, rows, at);
        let (h1, h2) = cut(self.h, rows, at);
        let (hp1, hp2) = cut(self.h_prev, rows, at);
        let (cp1, cp2) = cut(self.c_prev, rows, at);
        let (x1, x2) = cut(self.aux, rows, at);
        let (dc1, dc2) = cut_mut(self.dc, rows, at);
        let (di1, di2) = cut_mut(self.dgi, rows, at);
        let (dg1, dg2) = cut_mut(self.dgh, rows, at);
        let (d1, d2) = cut_mut(self.direct, rows, at);
        (
            Backward {
                dh: dh1,
                gates: g1,
                h: h1,
                h_prev: hp1,
                c_prev: cp1,
                aux: x1,
                dc: dc1,
                dgi: di1,
                dgh: dg1,
                direct: d1,
            },
            Backward {
                dh: dh2,
                gates: g2,
                h: h2,
                h_prev: hp2,
                c_prev: cp2,
                aux: x2,
                dc: dc2,
                dgi: di2,
                dgh: dg2,
                direct: d2,
            },
        )
    }
}

/// One backward step on `parts` threads, rows split as in [`forward_rows`]: the cell's
/// derivatives, then (unless truncation `cut` this step) ∂L/∂h_{t−1} = ∂L/∂g_t · W_hh into
/// `direct` (added to the GRU's direct path; LSTM: ∂L/∂c_{t−1} zeroed when cut). Returns
/// Σ(∂L/∂c_t)² when `norm` (LSTM probe), else 0.
fn backward_rows<F: Scalar>(
    cell: Cell,
    h: usize,
    w_hh: ArrayView2<F>,
    s: Backward<'_, F>,
    (rows, parts): (usize, usize),
    cut_here: bool,
    norm: bool,
) -> f64 {
    if parts <= 1 || rows < 2 {
        return backward_seq(cell, h, w_hh, s, rows, cut_here, norm);
    }
    let (left, mid) = (parts / 2, rows * (parts / 2) / parts);
    let (s1, s2) = s.split(rows, mid);
    let (a, b) = crate::nn::par::join(
        || backward_rows(cell, h, w_hh, s1, (mid, left), cut_here, norm),
        || backward_rows(cell, h, w_hh, s2, (rows - mid, parts - left), cut_here, norm),
    );
    a + b
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
        let cut_here = bptt.is_some_and(|k| (s - 1) % k == 0);
        let parts = threads.count().min(b);
        let dc_sq = backward_rows(cell, h, l.weight_hh.view(), step, (b, parts), cut_here, probing);
        if probing && cell == Cell::Lstm {
            buf.grad_c_norm[s - 1] = dc_sq.sqrt();
        }
        if s == 1 && probing && !cut_here {
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

/// [`backward_rows`] on the calling thread.
fn backward_seq<F: Scalar>(
    cell: Cell,
    h: usize,
    w_hh: ArrayView2<F>,
    mut s: Backward<'_, F>,
    rows: usize,
    cut_here: bool,
    norm: bool,
) -> f64 {
    let sq = match cell {
        Cell::RnnTanh | Cell::RnnRelu => {
            super::rnn::backward_step(cell.nonlinearity(), s.reborrow());
            0.0
        }
        Cell::Lstm => super::lstm::backward_step(h, s.reborrow(), norm),
        Cell::Gru => {
            super::gru::backward_step(h, s.reborrow());
            0.0
        }
    };
    // truncated BPTT: h_{t−1} is a constant to step t when t − 1 is a multiple of K
    if cut_here {
        s.direct.fill(F::zero());
        s.dc.fill(F::zero());
        return sq;
    }
    // ∂L/∂h_{t−1} = ∂L/∂g_t · W_hh (+ the GRU's direct path, already in `direct`)
    let gh = cell.gates() * h;
    let dg: &[F] = if cell == Cell::Gru { s.dgh } else { s.dgi };
    F::gemm_seq(view_mut(s.direct, (rows, h)), view(dg, (rows, gh)), w_hh, cell == Cell::Gru);
    sq
}
