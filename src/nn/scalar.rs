//! The floating-point types the engine runs in: `f32` for training, `f64` for gradient checks.

use ndarray::{ArrayView2, ArrayViewMut2, LinalgScalar, ScalarOperand, ShapeBuilder};
use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::cell::RefCell;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

/// Products with fewer multiply-adds than this run on one thread whatever [`Threads`] says:
/// splitting them costs more than it saves. 2²⁰ splits `deep`'s 128³ products (2²¹) in two at
/// two threads, which measured faster than leaving them whole (docs/performance.md, session 5);
/// `tiny`'s (64·32·32) stay whole.
pub const PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// How many threads a matrix product may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread only.
    One,
    /// Split over this many threads of the current rayon pool.
    Many(usize),
}

impl Threads {
    /// `n <= 1` runs sequentially.
    pub fn new(n: usize) -> Self {
        if n <= 1 { Self::One } else { Self::Many(n) }
    }

    /// Number of threads.
    pub fn count(self) -> usize {
        match self {
            Self::One => 1,
            Self::Many(n) => n,
        }
    }
}

/// A product on the calling thread: `(c, a, b, accumulate, check)` as [`Scalar::gemm_seq_checked`].
type SeqProduct<F> = fn(ArrayViewMut2<F>, ArrayView2<F>, ArrayView2<F>, bool, bool) -> Option<bool>;

/// `c (+)= a·b` on `parts` threads: the larger output dimension is cut in two, recursively,
/// and the halves run under [`crate::nn::par::join`], each a sequential product; what the
/// halves know of their entries' finiteness (see [`Scalar::gemm_checked`]), combined.
///
/// We split ourselves rather than let faer parallelise because faer's parallel path allocates
/// on every call (hundreds of allocations a step, measured by `tests/alloc.rs`), while
/// `par::join` (like `rayon::join`) keeps its jobs on the stack; the cut depends only on the
/// shapes and the thread count, so results are reproducible for a given count.
fn split_gemm<F: Scalar>(
    mut c: ArrayViewMut2<F>,
    a: ArrayView2<F>,
    b: ArrayView2<F>,
    accumulate: bool,
    check: bool,
    parts: usize,
    seq: SeqProduct<F>,
) -> Option<bool> {
    let (m, n) = c.dim();
    if parts <= 1 || m * n * a.ncols() < PARALLEL_MIN_FLOPS || (m < 32 && n < 32) {
        return seq(c, a, b, accumulate, check);
    }
    let (left, right) = (parts / 2, parts - parts / 2);
    let halves = if n >= m {
        let mid = n * left / parts;
        let (c1, c2) = c.view_mut().split_at(ndarray::Axis(1), mid);
        let (b1, b2) = b.split_at(ndarray::Axis(1), mid);
        crate::nn::par::join(
            || split_gemm(c1, a, b1, accumulate, check, left, seq),
            || split_gemm(c2, a, b2, accumulate, check, right, seq),
        )
    } else {
        let mid = m * left / parts;
        let (c1, c2) = c.view_mut().split_at(ndarray::Axis(0), mid);
        let (a1, a2) = a.split_at(ndarray::Axis(0), mid);
        crate::nn::par::join(
            || split_gemm(c1, a1, b, accumulate, check, left, seq),
            || split_gemm(c2, a2, b, accumulate, check, right, seq),
        )
    };
    Some(halves.0? && halves.1?)
}

/// Products with fewer multiply-adds than this are never padded (see [`needs_padding`]).
pub const PAD_MIN_FLOPS: usize = 1 << 24;

/// Columns of `a` this many bytes apart (or a multiple) alias in the L1 cache.
const ALIAS_BYTES: usize = 4096;

/// Bytes added to each padded column: one cache line.
const PAD_BYTES: usize = 64;

/// Whether `a` of a large `c (+)= a·b` is copied first into a buffer whose columns are one cache
/// line further apart: the ∂L/∂W product of a layer whose fan_out is a multiple of 1024 f32.
///
/// There `c` (∂L/∂W) is row-major and `a` (∂L/∂yᵀ) a transposed view whose columns (the rows of
/// ∂L/∂y) lie a multiple of 4 KiB apart. faer's kernel (private-gemm-x86) reads that operand
/// without packing it, one short run per column, and every column falls in the same L1 sets: on
/// the `wide` layer (2048 × 2048, batch 256) the product ran at 95–102 GFLOP/s, and at 117–137 once
/// the columns were padded (`examples/gemm_probe.rs`, docs/performance.md). The kernel and its
/// order of operations do not depend on that stride, so the result is the same to the bit (tested).
/// The copy costs m·k reads and writes against m·n·k multiply-adds: only for `n ≥ 64`.
fn needs_padding(sa: &[isize], sc: &[isize], size: usize, flops: usize, n: usize) -> bool {
    let col_bytes = sa[1].unsigned_abs() * size;
    flops >= PAD_MIN_FLOPS
        && n >= 64
        && sc[1] == 1
        && sa[0] == 1
        && col_bytes > 0
        && col_bytes.is_multiple_of(ALIAS_BYTES)
}

/// Copies the column-major view `a` into `buf` (grown if needed, never shrunk), its columns
/// [`PAD_BYTES`] further apart, and returns the copy's view.
fn pad_columns<'b, F: Copy + Default>(a: &ArrayView2<F>, buf: &'b mut Vec<F>) -> ArrayView2<'b, F> {
    let (m, k) = a.dim();
    let ld = a.strides()[1].unsigned_abs() + PAD_BYTES / size_of::<F>();
    if buf.len() < ld * k {
        buf.resize(ld * k, F::default());
    }
    for (j, col) in a.columns().into_iter().enumerate() {
        let dst = &mut buf[j * ld..j * ld + m];
        match col.as_slice() {
            Some(src) => dst.copy_from_slice(src),
            None => dst.iter_mut().zip(col).for_each(|(d, &s)| *d = s),
        }
    }
    ArrayView2::from_shape((m, k).strides((1, ld)), &buf[..]).expect("gradscope internal error: padded view")
}

/// A real floating-point scalar the layers are generic over.
///
/// The engine is written once and instantiated twice: `f32` trains, `f64` checks gradients
/// against finite differences with the very same code.
pub trait Scalar:
    Float
    + FromPrimitive
    + ToPrimitive
    + LinalgScalar
    + ScalarOperand
    + Default
    + Debug
    + Display
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + Send
    + Sync
    + 'static
{
    /// `"f32"` or `"f64"`, as safetensors and PyTorch name the dtype.
    const NAME: &'static str;

    /// The error function (for the exact GELU).
    fn erf(self) -> Self;

    /// Converts from `f64`, rounding to nearest.
    fn of(x: f64) -> Self;

    /// Widens (or keeps) to `f64`.
    fn f64(self) -> f64;

    /// h = φ(z) with a vectorised kernel where one exists for this type and activation
    /// (f32: sigmoid, tanh, silu); false leaves the work to the scalar loop.
    fn activation_fast(activation: crate::nn::Activation, z: &[Self], h: &mut [Self]) -> bool;

    /// h = φ(z) and φ′ into `d` in one vectorised pass where one exists for this type and
    /// activation (f32: sigmoid, tanh); false leaves both to the caller.
    fn activation_fast_with_derivative(
        activation: crate::nn::Activation,
        z: &[Self],
        h: &mut [Self],
        d: &mut [Self],
    ) -> bool;

    /// `c = a·b` (`accumulate = false`) or `c += a·b` (`accumulate = true`).
    ///
    /// Any strides are accepted, so transposed views (`w.t()`) cost nothing.
    fn gemm(c: ArrayViewMut2<Self>, a: ArrayView2<Self>, b: ArrayView2<Self>, accumulate: bool, threads: Threads) {
        Self::gemm_checked(c, a, b, accumulate, threads, false);
    }

    /// [`Scalar::gemm`] on the calling thread.
    fn gemm_seq(c: ArrayViewMut2<Self>, a: ArrayView2<Self>, b: ArrayView2<Self>, accumulate: bool) {
        Self::gemm_seq_checked(c, a, b, accumulate, false);
    }

    /// [`Scalar::gemm`]; with `check`, also whether every entry of `c` is finite afterwards,
    /// where the product can tell from the values it stores (our own f32 kernel,
    /// [`crate::nn::sgemm`]): `Some(finite)`, at no cost beyond the product. `None` where it
    /// cannot (f64, faer, an empty product) or without `check`: a pass over `c` is the caller's.
    fn gemm_checked(
        c: ArrayViewMut2<Self>,
        a: ArrayView2<Self>,
        b: ArrayView2<Self>,
        accumulate: bool,
        threads: Threads,
        check: bool,
    ) -> Option<bool>;

    /// [`Scalar::gemm_checked`] on the calling thread.
    fn gemm_seq_checked(
        c: ArrayViewMut2<Self>,
        a: ArrayView2<Self>,
        b: ArrayView2<Self>,
        accumulate: bool,
        check: bool,
    ) -> Option<bool>;
}

/// Clears the upper halves of the vector registers after the AVX-512 GEMM kernels.
///
/// Without it, every SSE instruction that follows (the elementwise loops and libm's `expf`,
/// compiled for baseline x86-64) waits on the dirty upper state: measured here, the sigmoid
/// forward pass ran 10× slower after a faer product than before it.
#[inline]
fn clear_upper_simd_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn zeroupper() {
            std::arch::x86_64::_mm256_zeroupper()
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available, checked just above.
            unsafe { zeroupper() }
        }
    }
}

/// `c (+)= a·b` by our own AVX-512 product ([`crate::nn::sgemm`]) where the CPU has it and `c`
/// has contiguous rows or columns: `Some(finite)` (`check`: whether every entry of `c` is
/// finite; else true); `None` leaves the product to faer.
fn own_f32(
    c: ArrayViewMut2<f32>,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    accumulate: bool,
    check: bool,
) -> Option<bool> {
    own_f32_on(c, a, b, accumulate, 1, check)
}

/// [`own_f32`] on `threads` threads: by [`crate::nn::sgemm::gemm`] for one, by
/// [`crate::nn::sgemm::gemm_shared`] for more if the product is large
/// ([`crate::nn::sgemm::SHARED_MIN`]); `None` leaves a smaller one to [`split_gemm`] (and faer).
fn own_f32_on(
    mut c: ArrayViewMut2<f32>,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    accumulate: bool,
    threads: usize,
    check: bool,
) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::nn::sgemm::{MR, NR, Operand, Product, SHARED_MAX_FLOATS, SHARED_MIN, available, gemm, gemm_shared};
        let ((m, k), n) = (a.dim(), b.ncols());
        let side = m.next_multiple_of(MR).min(n.next_multiple_of(NR));
        if threads >= 2 && (m * n * k < SHARED_MIN || side * k > SHARED_MAX_FLOATS) {
            return None;
        }
        // SAFETY (of both calls below): AVX-512F is there (checked); the views are valid for
        // their shapes and strides, `c` is borrowed mutably so it overlaps neither operand,
        // and m, n, k > 0 (checked by the callers).
        let gemm = |p: Product| unsafe {
            match threads {
                1 => gemm(p),
                _ => gemm_shared(p, threads),
            }
        };
        if !available() {
            return None;
        }
        let (sa, sb, sc) = (a.strides(), b.strides(), [c.strides()[0], c.strides()[1]]);
        let a_op = Operand { ptr: a.as_ptr(), rs: sa[0], cs: sa[1] };
        let b_op = Operand { ptr: b.as_ptr(), rs: sb[0], cs: sb[1] };
        let (rows_ok, cols_ok) = (sc[1] == 1 || n == 1, sc[0] == 1 || m == 1);
        if rows_ok && (!cols_ok || n >= m) {
            return Some(gemm(Product { m, n, k, a: a_op, b: b_op, c: c.as_mut_ptr(), rsc: sc[0], accumulate, check }));
        }
        if cols_ok {
            // cᵀ = bᵀ·aᵀ, whose rows are c's contiguous columns.
            let (at, bt) =
                (Operand { ptr: a_op.ptr, rs: sa[1], cs: sa[0] }, Operand { ptr: b_op.ptr, rs: sb[1], cs: sb[0] });
            return Some(gemm(Product {
                m: n,
                n: m,
                k,
                a: bt,
                b: at,
                c: c.as_mut_ptr(),
                rsc: sc[1],
                accumulate,
                check,
            }));
        }
    }
    let _ = (c, a, b, accumulate, threads, check);
    None
}

macro_rules! impl_scalar {
    ($t:ty, $name:literal, $erf:path, $fast:expr, $fast_d:expr, $faer:ident, $padded:ident, $own:expr, $shared:expr) => {
        /// `c (+)= a·b` by faer on the calling thread, for shapes already checked (m, n, k > 0).
        fn $faer(mut c: ArrayViewMut2<$t>, a: ArrayView2<$t>, b: ArrayView2<$t>, accumulate: bool) {
            let (m, k) = a.dim();
            let n = b.ncols();
            let (sa, sb) = (a.strides(), b.strides());
            let sc = [c.strides()[0], c.strides()[1]];
            // SAFETY: the views are valid for their shapes and strides, which are passed
            // unchanged; `c` is borrowed mutably and cannot alias `a` or `b`.
            let (fa, fb, fc) = unsafe {
                (
                    faer::MatRef::from_raw_parts(a.as_ptr(), m, k, sa[0], sa[1]),
                    faer::MatRef::from_raw_parts(b.as_ptr(), k, n, sb[0], sb[1]),
                    faer::MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, sc[0], sc[1]),
                )
            };
            let beta = if accumulate { faer::Accum::Add } else { faer::Accum::Replace };
            faer::linalg::matmul::matmul(fc, beta, fa, fb, 1.0, faer::Par::Seq);
            clear_upper_simd_state();
        }

        impl Scalar for $t {
            const NAME: &'static str = $name;

            #[inline]
            fn activation_fast(activation: crate::nn::Activation, z: &[Self], h: &mut [Self]) -> bool {
                $fast(activation, z, h)
            }

            #[inline]
            fn activation_fast_with_derivative(
                activation: crate::nn::Activation,
                z: &[Self],
                h: &mut [Self],
                d: &mut [Self],
            ) -> bool {
                $fast_d(activation, z, h, d)
            }

            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }

            #[inline]
            fn of(x: f64) -> Self {
                x as $t
            }

            #[inline]
            fn f64(self) -> f64 {
                self as f64
            }

            fn gemm_checked(
                mut c: ArrayViewMut2<Self>,
                a: ArrayView2<Self>,
                b: ArrayView2<Self>,
                accumulate: bool,
                threads: Threads,
                check: bool,
            ) -> Option<bool> {
                assert!(
                    a.ncols() == b.nrows() && c.dim() == (a.nrows(), b.ncols()),
                    "gradscope internal error: gemm shapes {:?}·{:?} -> {:?}",
                    a.dim(),
                    b.dim(),
                    c.dim()
                );
                let shared: fn(ArrayViewMut2<$t>, ArrayView2<$t>, ArrayView2<$t>, bool, usize, bool) -> Option<bool> =
                    $shared;
                // a large product on several threads: balanced pieces (sgemm::gemm_shared)
                let balanced = threads.count() >= 2 && c.len() > 0 && a.ncols() > 0;
                match balanced.then(|| shared(c.view_mut(), a, b, accumulate, threads.count(), check)).flatten() {
                    Some(finite) => check.then_some(finite),
                    None => split_gemm(c, a, b, accumulate, check, threads.count(), Self::gemm_seq_checked),
                }
            }

            fn gemm_seq_checked(
                mut c: ArrayViewMut2<Self>,
                a: ArrayView2<Self>,
                b: ArrayView2<Self>,
                accumulate: bool,
                check: bool,
            ) -> Option<bool> {
                let (m, k) = a.dim();
                let (k2, n) = b.dim();
                assert!(
                    k == k2 && c.dim() == (m, n),
                    "gradscope internal error: gemm shapes {:?}·{:?} -> {:?}",
                    a.dim(),
                    b.dim(),
                    c.dim()
                );
                if m == 0 || n == 0 {
                    return None;
                }
                if k == 0 {
                    if !accumulate {
                        c.fill(0.0);
                    }
                    return None;
                }
                let own: fn(ArrayViewMut2<$t>, ArrayView2<$t>, ArrayView2<$t>, bool, bool) -> Option<bool> = $own;
                if let Some(finite) = own(c.view_mut(), a, b, accumulate, check) {
                    clear_upper_simd_state();
                    return check.then_some(finite);
                }
                $padded(c, a, b, accumulate);
                None
            }
        }

        /// `c (+)= a·b` by faer, `a` first padded where [`needs_padding`] says (shapes checked,
        /// m, n, k > 0).
        fn $padded(c: ArrayViewMut2<$t>, a: ArrayView2<$t>, b: ArrayView2<$t>, accumulate: bool) {
            let (m, k) = a.dim();
            let n = b.ncols();
            if needs_padding(a.strides(), c.strides(), size_of::<$t>(), m * n * k, n) {
                thread_local! {
                    /// The padded copy of `a` (see [`needs_padding`]): grown once, reused.
                    static PADDED: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
                }
                PADDED.with_borrow_mut(|buf| {
                    let padded = pad_columns(&a, buf);
                    $faer(c, padded, b, accumulate);
                });
            } else {
                $faer(c, a, b, accumulate);
            }
        }
    };
}

impl_scalar!(
    f32,
    "f32",
    libm::erff,
    crate::nn::fastmath::forward,
    crate::nn::fastmath::forward_with_derivative,
    faer_f32,
    faer_padded_f32,
    own_f32,
    own_f32_on
);
impl_scalar!(
    f64,
    "f64",
    libm::erf,
    |_, _: &[f64], _: &mut [f64]| false,
    |_, _: &[f64], _: &mut [f64], _: &mut [f64]| false,
    faer_f64,
    faer_padded_f64,
    |_, _, _, _, _| None,
    |_, _, _, _, _, _| None
);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn gemm_matches_ndarray_dot_with_transposes() {
        let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let b = array![[1.0, -1.0], [0.5, 2.0], [3.0, 0.0]];
        let mut c = Array2::<f64>::zeros((2, 2));
        f64::gemm(c.view_mut(), a.view(), b.view(), false, Threads::One);
        assert_eq!(c, a.dot(&b));
        // c += (bᵀ)ᵀ · (aᵀ)ᵀ through transposed views
        let bt = b.t().to_owned();
        f64::gemm(c.view_mut(), a.view(), bt.t(), true, Threads::new(2));
        assert_eq!(c, 2.0 * a.dot(&b));
    }

    /// Split over two threads (by output rows or columns), a product gives the bits of the whole
    /// product on one thread: each entry's sum runs over k in the same order. `deep`'s three
    /// products of a layer (128³, just above [`PARALLEL_MIN_FLOPS`]) and a taller one.
    #[test]
    fn splitting_a_product_changes_no_bit() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // the last shape is large enough for the shared, balanced product (sgemm::gemm_shared)
        // where the CPU has AVX-512: pieces along the columns (y, ∂x) and along the rows (∂W)
        for (batch, fan_in, fan_out) in [(128, 128, 128), (256, 96, 200), (256, 520, 530)] {
            assert!(batch * fan_in * fan_out >= PARALLEL_MIN_FLOPS, "the test shapes must be split");
            let f = |r: usize, c: usize, s: f32| ((r * 31 + c * 7) as f32 * s).sin();
            let x = Array2::from_shape_fn((batch, fan_in), |(r, c)| f(r, c, 0.013));
            let w = Array2::from_shape_fn((fan_out, fan_in), |(r, c)| f(r, c, 0.021));
            let g = Array2::from_shape_fn((batch, fan_out), |(r, c)| f(r, c, 0.017));
            let bias = Array2::from_shape_fn((batch, fan_out), |(_, c)| f(0, c, 0.3));
            // (c, a, b, accumulate): y = b + x·Wᵀ, ∂W += gᵀ·x, ∂x = g·W
            let cases = [
                (bias.clone(), x.view(), w.t(), true),
                (w.clone(), g.t(), x.view(), true),
                (Array2::zeros((batch, fan_in)), g.view(), w.view(), false),
            ];
            for (i, (c, a, b, acc)) in cases.into_iter().enumerate() {
                let mut one = c.clone();
                f32::gemm(one.view_mut(), a, b, acc, Threads::One);
                let mut two = c.clone();
                pool.install(|| f32::gemm(two.view_mut(), a, b, acc, Threads::new(2)));
                assert!(
                    one.iter().zip(&two).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{batch}·{fan_in}·{fan_out}, product {i}"
                );
                // and cut by rows, whichever cut split_gemm chose
                let mid = a.nrows() / 2;
                let (a1, a2) = a.split_at(ndarray::Axis(0), mid);
                let (mut c1, mut c2) = two.view_mut().split_at(ndarray::Axis(0), mid);
                c1.assign(&c.slice(ndarray::s![..mid, ..]));
                c2.assign(&c.slice(ndarray::s![mid.., ..]));
                f32::gemm_seq(c1, a1, b, acc);
                f32::gemm_seq(c2, a2, b, acc);
                assert!(
                    one.iter().zip(&two).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{batch}·{fan_in}·{fan_out}, rows, {i}"
                );
            }
        }
    }

    /// On the faer path (CPUs without AVX-512), the ∂L/∂W product of a layer with fan_out 1024
    /// (its ∂L/∂y rows 4 KiB apart) is padded, and gives the bits of the unpadded product, at one
    /// thread and split over two.
    #[test]
    fn padding_the_aliased_operand_changes_no_bit() {
        let (batch, fan_in, fan_out) = (64, 300, 1024);
        let g = Array2::from_shape_fn((batch, fan_out), |(r, c)| ((r * 31 + c * 7) as f32 * 0.013).sin());
        let x = Array2::from_shape_fn((batch, fan_in), |(r, c)| ((r * 5 + c * 3) as f32 * 0.021).cos());
        let (a, sc) = (g.t(), [fan_in as isize, 1]);
        assert!(needs_padding(a.strides(), &sc, 4, fan_out * fan_in * batch, fan_in), "the test shape must be padded");
        let start = Array2::from_shape_fn((fan_out, fan_in), |(r, c)| ((r + c) as f32 * 0.1).sin());
        let mut plain = start.clone();
        faer_f32(plain.view_mut(), a, x.view(), true);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for parts in [1, 2] {
            let mut padded = start.clone();
            let seq = |c: ArrayViewMut2<f32>, a: ArrayView2<f32>, b: ArrayView2<f32>, acc, _| {
                faer_padded_f32(c, a, b, acc);
                None
            };
            pool.install(|| split_gemm(padded.view_mut(), a, x.view(), true, false, parts, seq));
            assert!(padded.iter().zip(&plain).all(|(p, q)| p.to_bits() == q.to_bits()), "{parts} threads");
        }
        let want = &start + &g.t().dot(&x);
        assert!(plain.iter().zip(&want).all(|(p, q)| (p - q).abs() <= 1e-4 * q.abs().max(1.0)));
    }

    /// f32 products through every layout the layers use (and the transposed output, a row or a
    /// column vector, accumulation, an empty contraction) against an f64 reference; on an
    /// AVX-512 CPU these run the own kernel ([`crate::nn::sgemm`]), elsewhere faer.
    #[test]
    fn f32_products_of_every_layout_match_f64() {
        let f = |r: usize, c: usize, s: f64| ((r * 31 + c * 7) as f64 * s).sin();
        // The own kernel computes each entry the same way in either orientation of c.
        #[cfg(target_arch = "x86_64")]
        let own_kernel = crate::nn::sgemm::available();
        #[cfg(not(target_arch = "x86_64"))]
        let own_kernel = false;
        for (m, k, n) in [(64, 32, 32), (1, 40, 33), (37, 19, 1), (130, 300, 70), (5, 0, 4), (300, 600, 520)] {
            let a64 = Array2::from_shape_fn((m, k), |(r, c)| f(r, c, 0.013));
            let b64 = Array2::from_shape_fn((k, n), |(r, c)| f(r, c, 0.021));
            let c0 = Array2::from_shape_fn((m, n), |(r, c)| f(r, c, 0.05));
            let (a, b) = (a64.mapv(|v| v as f32), b64.mapv(|v| v as f32));
            let (at, bt) = (a.t().to_owned(), b.t().to_owned());
            for accumulate in [false, true] {
                let want = if accumulate { &c0 + &a64.dot(&b64) } else { a64.dot(&b64) };
                let tol = 1e-5 * (k as f64).max(1.0);
                for (layout, a_view, b_view) in [("a·b", a.view(), b.view()), ("(aᵀ)ᵀ·(bᵀ)ᵀ", at.t(), bt.t())]
                {
                    let mut rows = c0.mapv(|v| v as f32);
                    f32::gemm_seq(rows.view_mut(), a_view, b_view, accumulate);
                    let mut cols = Array2::<f32>::zeros((n, m));
                    cols.assign(&c0.t().mapv(|v| v as f32));
                    f32::gemm_seq(cols.view_mut().reversed_axes(), a_view, b_view, accumulate);
                    for ((i, j), w) in want.indexed_iter() {
                        let (r, c) = (rows[[i, j]] as f64, cols[[j, i]] as f64);
                        assert!((r - w).abs() <= tol, "{m}×{k}×{n} {layout} acc={accumulate} ({i},{j}): {r} vs {w}");
                        assert!((c - w).abs() <= tol, "{m}×{k}×{n} {layout} acc={accumulate} cᵀ ({i},{j}): {c} vs {w}");
                        if own_kernel {
                            assert_eq!(rows[[i, j]].to_bits(), cols[[j, i]].to_bits(), "{m}×{k}×{n} {layout}: c or cᵀ");
                        }
                    }
                }
            }
        }
    }
}
