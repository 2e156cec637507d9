//! Our own hot elementwise loops, compiled once per instruction set and chosen at run time.
//!
//! The default build targets x86-64-v2 (`.cargo/config.toml`) so that one binary runs on every
//! node of a cluster; left at that, these loops would run in 128-bit SSE. Each function here
//! carries `#[multiversion(targets = "simd")]`: the `multiversion` crate compiles its body again
//! for x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA) and AArch64 SVE, and the first call on a CPU
//! picks the best clone (one atomic load per call after that). The bodies are plain slice loops
//! that the compiler vectorises for whichever width it is given; everything they call is
//! `#[inline]`, so it is compiled into the clone. Elsewhere in the crate, `nonfinite::all_finite`
//! and the probes' lane sums carry the same attribute. Check a new clone's code before keeping
//! it: the optimizer's update loop, cloned, was vectorised with gathers and ran 2.6× slower
//! (docs/DESIGN.md, Speed).
//!
//! Same bits on every clone: Rust neither reassociates nor fuses floating-point operations
//! unless asked (`mul_add`), so an AVX-512 clone computes exactly what the SSE one does, lane
//! by lane (tested below, and by the fixed-seed baseline compare).

use crate::nn::kernel::LANES;
use crate::nn::{Activation, Scalar};
use multiversion::multiversion;

/// Whether the multiversioned function it is expanded in was compiled with fused multiply-adds
/// (aarch64 always has them) — for [`crate::nn::kernel::add_square`].
macro_rules! fma {
    () => {
        multiversion::target::target_cfg_f!(any(target_feature = "fma", target_arch = "aarch64"))
    };
}

/// `g ← g ⊙ d`: the chain rule's factor φ′ applied in place.
#[multiversion(targets = "simd")]
pub fn mul_assign<F: Scalar>(g: &mut [F], d: &[F]) {
    assert_eq!(g.len(), d.len(), "gradscope internal error: mul_assign lengths");
    for (g, &d) in g.iter_mut().zip(d) {
        *g *= d;
    }
}

/// `out = a ⊙ b`.
#[multiversion(targets = "simd")]
pub fn mul<F: Scalar>(out: &mut [F], a: &[F], b: &[F]) {
    assert!(out.len() == a.len() && a.len() == b.len(), "gradscope internal error: mul lengths");
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a * b;
    }
}

/// `acc[j] += rows[i·w + j]` for every row i in order, w = `acc.len()`: ∂L/∂b = Σ_rows ∂L/∂y.
#[multiversion(targets = "simd")]
pub fn add_rows<F: Scalar>(acc: &mut [F], rows: &[F]) {
    if acc.is_empty() {
        return;
    }
    assert_eq!(rows.len() % acc.len(), 0, "gradscope internal error: add_rows lengths");
    if acc.len() > BLOCKED_MAX {
        for row in rows.chunks_exact(acc.len()) {
            for (a, &r) in acc.iter_mut().zip(row) {
                *a += r;
            }
        }
        return;
    }
    column_blocks(acc.len(), |c, n| match n {
        WIDE => add_block::<F, WIDE>(acc, rows, c),
        LANES => add_block::<F, LANES>(acc, rows, c),
        _ => add_block::<F, 1>(acc, rows, c),
    });
}

/// `out = a ⊙ b`, then `acc[j] += out[i·w + j]` for every row i in order (w = `acc.len()`), in one
/// pass: ∂L/∂z = ∂L/∂h ⊙ φ′ and ∂L/∂b += Σ_rows ∂L/∂z while each row of ∂L/∂z is still in a
/// register. The bits of [`mul`] followed by [`add_rows`] (each sum is taken in the same order).
#[multiversion(targets = "simd")]
pub fn mul_add_rows<F: Scalar>(out: &mut [F], a: &[F], b: &[F], acc: &mut [F]) {
    let w = acc.len();
    assert!(
        out.len() == a.len() && a.len() == b.len() && (w == 0 || out.len().is_multiple_of(w)),
        "gradscope internal error: mul_add_rows lengths"
    );
    if w == 0 {
        return out.iter_mut().zip(a).zip(b).for_each(|((o, &a), &b)| *o = a * b);
    }
    if w > BLOCKED_MAX {
        for ((o, a), b) in out.chunks_exact_mut(w).zip(a.chunks_exact(w)).zip(b.chunks_exact(w)) {
            for (((o, &a), &b), s) in o.iter_mut().zip(a).zip(b).zip(acc.iter_mut()) {
                let v = a * b;
                *o = v;
                *s += v;
            }
        }
        return;
    }
    column_blocks(w, |c, n| match n {
        WIDE => mul_add_block::<F, WIDE>(out, a, b, acc, c),
        LANES => mul_add_block::<F, LANES>(out, a, b, acc, c),
        _ => mul_add_block::<F, 1>(out, a, b, acc, c),
    });
}

/// `rows[i·w + j] = b[j]` for every row i (w = `b.len()`): the bias under a layer's product,
/// each block of `b` held in registers and stored down the rows (a `memcpy` call per 32-entry
/// row took 2 % of a `tiny` step).
#[multiversion(targets = "simd")]
pub fn fill_rows<F: Scalar>(rows: &mut [F], b: &[F]) {
    if b.is_empty() {
        return;
    }
    assert_eq!(rows.len() % b.len(), 0, "gradscope internal error: fill_rows lengths");
    if b.len() > BLOCKED_MAX {
        return rows.chunks_exact_mut(b.len()).for_each(|r| r.copy_from_slice(b));
    }
    column_blocks(b.len(), |c, n| match n {
        WIDE => fill_block::<F, WIDE>(rows, b, c),
        LANES => fill_block::<F, LANES>(rows, b, c),
        _ => fill_block::<F, 1>(rows, b, c),
    });
}

/// Columns `c..c + N` of [`fill_rows`].
#[inline(always)]
fn fill_block<F: Scalar, const N: usize>(rows: &mut [F], b: &[F], c: usize) {
    let v: [F; N] = std::array::from_fn(|j| b[c + j]);
    for row in rows.chunks_exact_mut(b.len()) {
        row[c..c + N].copy_from_slice(&v);
    }
}

/// Columns summed down the rows at once by [`add_rows`] and [`mul_add_rows`]: two vectors of
/// accumulators, so that two independent additions overlap each row's latency.
const WIDE: usize = 2 * LANES;

/// The widest rows that [`add_rows`], [`mul_add_rows`] and [`fill_rows`] take by blocks of
/// columns. Wider rows go row by row, in order: each sum's next addition is a row's worth of
/// work later, which hides the store it waits for, and the rows are read in order (by blocks
/// of columns, read with a stride of a row, `deep`'s 128 columns and `slide`'s 256 took +4 %
/// and +2 % a step at one thread; by blocks of 8 rows, worse).
const BLOCKED_MAX: usize = 64;

/// Calls `block(c, n)` for the blocks of columns `c..c + n` that cover `0..w` in order: blocks of
/// [`WIDE`], then of [`LANES`], then single columns.
#[inline(always)]
fn column_blocks(w: usize, mut block: impl FnMut(usize, usize)) {
    let mut c = 0;
    for n in [WIDE, LANES, 1] {
        while c + n <= w {
            block(c, n);
            c += n;
        }
    }
}

/// Columns `c..c + N` of [`add_rows`], their sums kept in registers down the rows (through
/// memory, each row's addition waited for the store of the row before it: 4 µs of a 55 µs `tiny`
/// step).
#[inline(always)]
fn add_block<F: Scalar, const N: usize>(acc: &mut [F], rows: &[F], c: usize) {
    let mut s: [F; N] = std::array::from_fn(|j| acc[c + j]);
    for row in rows.chunks_exact(acc.len()) {
        let row = &row[c..c + N];
        for j in 0..N {
            s[j] += row[j];
        }
    }
    acc[c..c + N].copy_from_slice(&s);
}

/// Columns `c..c + N` of [`mul_add_rows`], as [`add_block`].
#[inline(always)]
fn mul_add_block<F: Scalar, const N: usize>(out: &mut [F], a: &[F], b: &[F], acc: &mut [F], c: usize) {
    let w = acc.len();
    let mut s: [F; N] = std::array::from_fn(|j| acc[c + j]);
    for ((o, a), b) in out.chunks_exact_mut(w).zip(a.chunks_exact(w)).zip(b.chunks_exact(w)) {
        let (o, a, b) = (&mut o[c..c + N], &a[c..c + N], &b[c..c + N]);
        for j in 0..N {
            let v = a[j] * b[j];
            o[j] = v;
            s[j] += v;
        }
    }
    acc[c..c + N].copy_from_slice(&s);
}

/// `p ← p − lr·g`: plain SGD's update, the bits of `Sgd::step`'s loop (no fused multiply-add).
#[multiversion(targets = "simd")]
pub fn sgd<F: Scalar>(param: &mut [F], grad: &[F], lr: F) {
    assert_eq!(param.len(), grad.len(), "gradscope internal error: sgd lengths");
    for (p, &g) in param.iter_mut().zip(grad) {
        *p -= lr * g;
    }
}

/// [`sgd`], also returning `[‖θ_new − θ_old‖², ‖θ_old‖², ‖g‖²]` for the probes: squares summed
/// in [`LANES`] f64 lanes over whole chunks, the tail into the totals, then each lane set folded
/// in order onto them — the bits of `optim::apply_update`'s measured loop (tested), without its
/// generic state slices, which its AVX-512 clone turned into gathers.
#[multiversion(targets = "simd")]
pub fn sgd_measured<F: Scalar>(param: &mut [F], grad: &[F], lr: F) -> [f64; 3] {
    if fma!() { sgd_measured_with::<F, true>(param, grad, lr) } else { sgd_measured_with::<F, false>(param, grad, lr) }
}

/// [`sgd_measured`]'s loop; `FMA` as in [`crate::nn::kernel::add_square`].
#[inline(always)]
fn sgd_measured_with<F: Scalar, const FMA: bool>(param: &mut [F], grad: &[F], lr: F) -> [f64; 3] {
    use crate::nn::kernel::add_square;
    assert_eq!(param.len(), grad.len(), "gradscope internal error: sgd lengths");
    let whole = param.len() / LANES * LANES;
    let (chunks, tail) = param.split_at_mut(whole);
    let mut lanes = [[0.0f64; LANES]; 3];
    for (p, g) in chunks.chunks_exact_mut(LANES).zip(grad.chunks_exact(LANES)) {
        for j in 0..LANES {
            let old = p[j];
            p[j] = old - lr * g[j];
            lanes[0][j] = add_square::<F, FMA>(lanes[0][j], p[j] - old);
            lanes[1][j] = add_square::<F, FMA>(lanes[1][j], old);
            lanes[2][j] = add_square::<F, FMA>(lanes[2][j], g[j]);
        }
    }
    let mut total = [0.0f64; 3];
    for (p, &g) in tail.iter_mut().zip(&grad[whole..]) {
        let old = *p;
        *p = old - lr * g;
        total[0] = add_square::<F, FMA>(total[0], *p - old);
        total[1] = add_square::<F, FMA>(total[1], old);
        total[2] = add_square::<F, FMA>(total[2], g);
    }
    for (t, l) in total.iter_mut().zip(&lanes) {
        *t += l.iter().fold(0.0f64, |s, &v| s + v);
    }
    total
}

/// Entries from which an elementwise pass is cut in two halves that run on two threads (when
/// the current rayon pool has more than one): below it a join costs more than half the
/// pass. Elementwise, the halves compute the bits of the whole pass.
pub const SPLIT_MIN_LEN: usize = 1 << 16;

/// Where a pass over `len` entries is cut, a multiple of `align` entries (so that chunked loops
/// keep their chunk boundaries), or `None` when it runs whole on the calling thread: fewer than
/// [`SPLIT_MIN_LEN`] entries, or a pool of one thread (`--threads 1`).
pub fn split_point(len: usize, align: usize) -> Option<usize> {
    let mid = len / 2 / align * align;
    (len >= SPLIT_MIN_LEN && mid > 0 && rayon::current_num_threads() > 1).then_some(mid)
}

/// [`sgd`], in two halves on two threads for a large tensor ([`split_point`]): the same bits.
pub fn sgd_split<F: Scalar>(param: &mut [F], grad: &[F], lr: F) {
    assert_eq!(param.len(), grad.len(), "gradscope internal error: sgd lengths");
    match split_point(param.len(), LINE) {
        Some(mid) => {
            let ((p1, p2), (g1, g2)) = (param.split_at_mut(mid), grad.split_at(mid));
            crate::nn::par::join(|| sgd(p1, g1, lr), || sgd(p2, g2, lr));
        }
        None => sgd(param, grad, lr),
    }
}

/// [`sgd_measured`], in two halves on two threads for a large tensor ([`split_point`]): the
/// update's bits, and each norm the sum of the two halves' (the first half's first) — so a
/// norm's last bits differ from one thread's, whose lanes run through the whole tensor.
pub fn sgd_measured_split<F: Scalar>(param: &mut [F], grad: &[F], lr: F) -> [f64; 3] {
    assert_eq!(param.len(), grad.len(), "gradscope internal error: sgd lengths");
    match split_point(param.len(), LINE) {
        Some(mid) => {
            let ((p1, p2), (g1, g2)) = (param.split_at_mut(mid), grad.split_at(mid));
            let (a, b) = crate::nn::par::join(|| sgd_measured(p1, g1, lr), || sgd_measured(p2, g2, lr));
            [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
        }
        None => sgd_measured(param, grad, lr),
    }
}

/// Σ x² as [`sgd_measured_split`] measures a tensor: [`crate::nn::kernel::sum_sq`], of the two
/// halves on two threads and added (the first's first) where the update splits it, so that a
/// norm measured without an update (`ParamNorms::of`) has the bits of the update's.
pub fn sum_sq_split<F: Scalar>(xs: &[F]) -> f64 {
    match split_point(xs.len(), LINE) {
        Some(mid) => {
            let (a, b) = xs.split_at(mid);
            let (sa, sb) = crate::nn::par::join(|| sum_sq(a), || sum_sq(b));
            sa + sb
        }
        None => sum_sq(xs),
    }
}

/// Σ x², each square in f64: [`crate::nn::kernel::sum_sq`] (the optimizer's and the probes'
/// norm), cloned per instruction set.
#[multiversion(targets = "simd")]
pub fn sum_sq<F: Scalar>(xs: &[F]) -> f64 {
    if fma!() { crate::nn::kernel::sum_sq::<F, true>(xs) } else { crate::nn::kernel::sum_sq::<F, false>(xs) }
}

/// Entries of F in a 64-byte cache line (at least 1): the cut between two threads' halves falls
/// on a line boundary, so that they never write the same line.
pub const LINE: usize = 16;

/// `out[i] = g(x[i])`, inlined into the caller's clone so that a cheap `g` vectorises.
#[inline(always)]
fn map_each<F: Scalar>(x: &[F], out: &mut [F], g: impl Fn(F) -> F) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = g(x);
    }
}

/// `h = φ(z)` with the scalar definitions ([`Activation::f`]). The piecewise-linear φ are written
/// out here, the expressions of [`Activation::f`] (tested bit for bit), because `f` itself, one
/// call per entry with its whole `match`, is not inlined into the clones: relu took 3.5 % of a
/// `wide` step in `Activation::f` and `df` alone.
#[multiversion(targets = "simd")]
pub fn activation<F: Scalar>(act: Activation, z: &[F], h: &mut [F]) {
    assert_eq!(z.len(), h.len(), "gradscope internal error: activation lengths");
    let zero = F::zero();
    match act {
        Activation::Identity => h.copy_from_slice(z),
        Activation::Relu => map_each(z, h, |z| if z > zero { z } else { zero }),
        Activation::LeakyRelu { negative_slope } => {
            let s = F::of(negative_slope);
            map_each(z, h, |z| if z > zero { z } else { z * s })
        }
        _ => map_each(z, h, |z| act.f(z)),
    }
}

/// `dphi = φ′(z)`, from the output h where that is how PyTorch computes it
/// ([`Activation::df_given_output`]).
#[multiversion(targets = "simd")]
pub fn derivative<F: Scalar>(act: Activation, z: &[F], h: &[F], dphi: &mut [F]) {
    assert!(z.len() == h.len() && h.len() == dphi.len(), "gradscope internal error: derivative lengths");
    let (zero, one) = (F::zero(), F::one());
    match act {
        Activation::Sigmoid => map_each(h, dphi, |h| h * (one - h)),
        Activation::Tanh => map_each(h, dphi, |h| one - h * h),
        Activation::Identity => dphi.fill(one),
        Activation::Relu => map_each(z, dphi, |z| if z > zero { one } else { zero }),
        Activation::LeakyRelu { negative_slope } => {
            let s = F::of(negative_slope);
            map_each(z, dphi, |z| if z > zero { one } else { s })
        }
        _ => map_each(z, dphi, |z| act.df(z)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ActivationKind;
    use clap::ValueEnum;

    /// The measured update in halves on two threads: the parameters of the update on one, each
    /// norm the sum of the halves' and within rounding of the whole tensor's; ‖W‖² and ‖g‖²
    /// measured without an update (`sum_sq_split`) have the same bits.
    #[test]
    fn measured_update_in_halves_sums_the_halves_norms() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let n = SPLIT_MIN_LEN + 37;
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731).sin() * 3.0).collect();
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.177).cos() * 1e-3).collect();
        let (mut whole, mut halves, mut apart) = (p0.clone(), p0.clone(), p0.clone());
        let want = sgd_measured(&mut whole, &g, 0.05);
        let got = pool.install(|| sgd_measured_split(&mut halves, &g, 0.05));
        let cut = pool.install(|| split_point(n, LINE)).expect("a large tensor on two threads is split");
        let (a, b) = apart.split_at_mut(cut);
        let (ha, hb) = (sgd_measured(a, &g[..cut], 0.05), sgd_measured(b, &g[cut..], 0.05));
        assert!(whole.iter().zip(&halves).all(|(w, h)| w.to_bits() == h.to_bits()), "parameters");
        let unmeasured = pool.install(|| [sum_sq_split(&p0), sum_sq_split(&g)]);
        assert_eq!([got[1], got[2]].map(f64::to_bits), unmeasured.map(f64::to_bits), "‖W‖², ‖g‖² without an update");
        for k in 0..3 {
            assert_eq!(got[k].to_bits(), (ha[k] + hb[k]).to_bits(), "norm {k}: the halves' sum");
            assert!((got[k] - want[k]).abs() <= 1e-12 * want[k], "norm {k}: {} vs {}", got[k], want[k]);
        }
        let (mut small, mut small_whole) = (p0[..1000].to_vec(), p0[..1000].to_vec());
        let want = sgd_measured(&mut small_whole, &g[..1000], 0.05);
        assert_eq!(pool.install(|| sgd_measured_split(&mut small, &g[..1000], 0.05)), want, "a small tensor: whole");
    }

    /// The dispatched loops give the bits of the plain scalar expressions, for every activation,
    /// at lengths around the vector widths.
    #[test]
    fn dispatched_loops_match_scalar_expressions_bit_for_bit() {
        for n in [0, 1, 7, 15, 16, 17, 33, 1000] {
            let z: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 6.0 - 0.5).collect();
            let g: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.11).cos()).collect();
            for &kind in ActivationKind::value_variants() {
                let (act, name) = (Activation::new(kind, 0.02), format!("{kind:?}"));
                let mut h = vec![0.0f32; n];
                activation(act, &z, &mut h);
                let mut d = vec![0.0f32; n];
                derivative(act, &z, &h, &mut d);
                for i in 0..n {
                    assert_eq!(h[i].to_bits(), act.f(z[i]).to_bits(), "{name} φ({})", z[i]);
                    assert_eq!(d[i].to_bits(), act.df_given_output(z[i], h[i]).to_bits(), "{name} φ′({})", z[i]);
                }
            }
            // widths around the column blocks (16 and 32 columns at once, then single columns)
            for w in [1usize, 5, 16, 17, 32, 33, 48, 64, 70, 130].into_iter().filter(|&w| w <= n) {
                let rows = &z[..n / w * w];
                let mut acc = g[..w].to_vec();
                add_rows(&mut acc, rows);
                for (j, a) in acc.iter().enumerate() {
                    let want = rows.iter().skip(j).step_by(w).fold(g[j], |s, &x| s + x);
                    assert_eq!(a.to_bits(), want.to_bits(), "add_rows, w {w}, column {j}");
                }
                let mut filled = vec![f32::NAN; rows.len()];
                fill_rows(&mut filled, &g[..w]);
                assert!(filled.iter().enumerate().all(|(i, f)| f.to_bits() == g[i % w].to_bits()), "fill_rows, w {w}");
            }
            let mut out = vec![0.0f32; n];
            mul(&mut out, &z, &g);
            for w in [0usize, 1, 5, 16, 17, 32, 33, 48, 64, 70, 130].into_iter().filter(|&w| w <= n) {
                let rows = n.checked_div(w).map_or(n, |r| r * w);
                let (mut fused, mut acc) = (vec![0.0f32; rows], g[..w].to_vec());
                mul_add_rows(&mut fused, &z[..rows], &g[..rows], &mut acc);
                let mut want = g[..w].to_vec();
                add_rows(&mut want, &out[..rows]);
                assert!(fused.iter().zip(&out).all(|(f, o)| f.to_bits() == o.to_bits()), "mul_add_rows, w {w}");
                assert!(acc.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "mul_add_rows sums, w {w}");
            }
            let mut stepped = z.clone();
            sgd(&mut stepped, &g, 0.01);
            assert!(stepped.iter().zip(&z).zip(&g).all(|((s, &p), &g)| s.to_bits() == (p - 0.01 * g).to_bits()));
            let mut inplace = z.clone();
            mul_assign(&mut inplace, &g);
            for i in 0..n {
                assert_eq!(out[i].to_bits(), (z[i] * g[i]).to_bits());
                assert_eq!(inplace[i].to_bits(), out[i].to_bits());
            }
        }
    }
}
