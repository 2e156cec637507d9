//! The f32 matrix product on AVX-512: packed, cache-blocked, one micro-kernel.
//!
//! faer's kernels (private-gemm-x86) run `wide`'s products at 60–80 % of a core's FMA peak and
//! `tiny`'s at 55–60 % (docs/performance.md, "Which GEMM kernel runs"); issue 16 asks for 75 % of
//! the peak over a whole `wide` step. This is the classic GotoBLAS/BLIS scheme, written for the
//! products the layers run:
//!
//! - `c (+)= a·b` is cut into blocks of `KC` along the contraction; for each, a block of `a`
//!   (`MC × KC`) is packed into panels of [`MR`] rows, laid out k-major, and a block of `b`
//!   (`KC × NC`) into panels of [`NR`] columns, k-major too; panels past the edge are filled with
//!   zeros, so the micro-kernel always runs whole.
//! - The micro-kernel keeps an `MR × NR` tile of `c` in 24 zmm registers: for each k it loads
//!   two vectors of the `b` panel and multiplies them by `MR` broadcasts of the `a` panel.
//!   The `a` panel (`MR × KC`, 12 KiB) stays in L1 while the kernel walks the `b` block's panels,
//!   which stay in L2 (`KC × NC`, 512 KiB) while the kernel walks the `a` panels.
//! - `c` is written (`accumulate = false`) or added to at the end of each `KC` block, its edges
//!   through masked stores.
//!
//! **Numbers.** Each entry of `c` is a chain of fused multiply-adds over k in order, restarted
//! from zero at each `KC` block and added to `c` at the block's end. That depends on `KC` only:
//! not on where the entry lies in its tile, not on `m` or `n`, not on how a caller splits the
//! output between threads. So a product cut in two gives the bits of the whole one.

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::OnceLock;

/// Rows of the micro-tile (broadcasts of `a`).
pub const MR: usize = 12;
/// Columns of the micro-tile (two 16-lane vectors of `b`).
pub const NR: usize = 32;
/// Depth of a block: the chain of FMAs restarts at each multiple of it.
pub const KC: usize = 256;
/// How many k steps ahead the micro-kernel prefetches the `b` panel (from L2).
const PREFETCH: usize = 8;
/// Products of at most this many multiply-adds read `a`, and `b` if its rows are contiguous,
/// where they lie, without packing.
const DIRECT_MAX: usize = 1 << 18;
/// Rows of `a` packed at once.
const MC: usize = 1020;
/// Columns of `b` packed at once (`KC × NC` floats: 512 KiB, half of L2).
const NC: usize = 512;

/// Whether this CPU runs the AVX-512 product (checked once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f"))
}

/// A 64-byte aligned block of floats, the packing buffers' unit.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

thread_local! {
    /// The packed blocks of `a` and `b`: grown once per thread, reused by every product.
    static PACKED: RefCell<(Vec<Line>, Vec<Line>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A matrix operand: pointer and strides in elements (row, column).
#[derive(Clone, Copy)]
pub struct Operand {
    /// The first element.
    pub ptr: *const f32,
    /// Elements from one row to the next.
    pub rs: isize,
    /// Elements from one column to the next.
    pub cs: isize,
}

/// One product `c (+)= a·b`: `a` m×k, `b` k×n, `c` m×n whose rows are contiguous (`c[i][j]` at
/// `c + i·rsc + j`).
#[derive(Clone, Copy)]
pub struct Product {
    /// Rows of `a` and `c`.
    pub m: usize,
    /// Columns of `b` and `c`.
    pub n: usize,
    /// Columns of `a`, rows of `b`: the contraction.
    pub k: usize,
    /// The left operand.
    pub a: Operand,
    /// The right operand.
    pub b: Operand,
    /// The first entry of the output.
    pub c: *mut f32,
    /// Elements from one row of `c` to the next.
    pub rsc: isize,
    /// Add `a·b` to `c` instead of writing it.
    pub accumulate: bool,
    /// Tell whether every entry of `c` is finite afterwards (see [`gemm`]).
    pub check: bool,
}

/// Computes `p`. With `p.check`, also tells whether every entry of `c` is finite afterwards,
/// from the values in registers as the last `KC` block stores them (no pass over `c`: the
/// divergence check of ∂L/∂W for free); without, returns true.
///
/// # Safety
/// The CPU has AVX-512F ([`available`]); the operands are valid for their shapes and strides;
/// `c` does not overlap `a` or `b`; `m, n, k > 0`.
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm(p: Product) -> bool {
    gemm_blocked(Blocking::DEFAULT, p)
}

/// The block sizes of [`gemm`]: `kc` fixes the bits of the result, `mc` and `nc` only speed.
#[derive(Clone, Copy, Debug)]
pub struct Blocking {
    /// Depth of a block.
    pub kc: usize,
    /// Rows of `a` packed at once, at most.
    pub mc: usize,
    /// Columns of `b` packed at once.
    pub nc: usize,
    /// Whether products of at most `DIRECT_MAX` multiply-adds read their operands unpacked.
    pub direct: bool,
}

impl Blocking {
    /// What [`gemm`] uses.
    pub const DEFAULT: Blocking = Blocking { kc: KC, mc: MC, nc: NC, direct: true };
}

/// [`gemm`] with other block sizes (`kc` a multiple of 16, `mc` of [`MR`], `nc` of [`NR`]), to
/// tune them (`examples/gemm_probe.rs`).
///
/// # Safety
/// As [`gemm`].
#[doc(hidden)]
#[target_feature(enable = "avx512f")]
pub unsafe fn gemm_blocked(blocking: Blocking, p: Product) -> bool {
    let Product { m, n, k, .. } = p;
    if blocking.direct && m * n * k <= DIRECT_MAX {
        return gemm_direct(blocking.kc, p);
    }
    // The loop runs in a function of its own, compiled for AVX-512 like the kernel it inlines:
    // a closure is compiled for the baseline, and the kernel can be inlined into it only where
    // the closure itself is inlined here first — which the inliner may decide either way from
    // anything else in the crate (a change to the probes once cost `tiny` 4 %).
    // SAFETY: as this function's.
    PACKED.with_borrow_mut(|(pa, pb)| unsafe { blocked_with(blocking, p, pa, pb) })
}

/// [`gemm_blocked`] with its packing buffers.
///
/// # Safety
/// As [`gemm`].
#[target_feature(enable = "avx512f")]
unsafe fn blocked_with(blocking: Blocking, p: Product, pa: &mut Vec<Line>, pb: &mut Vec<Line>) -> bool {
    let Blocking { kc: kc_max, mc: mc_limit, nc: nc_max, .. } = blocking;
    let Product { m, n, k, a, b, c, rsc, accumulate, check } = p;
    let mut finite = true;
    // Rows of `a` per block: at most MC, as even as whole panels allow (no thin last block
    // for which all of `b` would be packed again).
    let mc_max = m.div_ceil(m.div_ceil(mc_limit)).next_multiple_of(MR);
    let a_len = mc_max.min(m.next_multiple_of(MR)) * kc_max.min(k);
    let (pa, pb) = (grow(pa, a_len), grow(pb, nc_max.min(n).next_multiple_of(NR) * kc_max.min(k)));
    let mut pc = 0;
    while pc < k {
        let kc = kc_max.min(k - pc);
        let add = accumulate || pc > 0;
        let last = check && pc + kc == k;
        let mut ic = 0;
        while ic < m {
            let mc = mc_max.min(m - ic);
            pack_a(pa, a, ic, mc, pc, kc);
            let mut jc = 0;
            while jc < n {
                let nc = nc_max.min(n - jc);
                pack_b(pb, b, pc, kc, jc, nc);
                let ct = c.offset(ic as isize * rsc + jc as isize);
                finite &= tiles::<false>(
                    mc,
                    nc,
                    kc,
                    |ir| (pa.add(ir * kc) as *const f32, 1, MR as isize),
                    |jr| (pb.add(jr * kc) as *const f32, NR as isize),
                    ct,
                    rsc,
                    add,
                    last,
                );
                jc += nc;
            }
            ic += mc;
        }
        pc += kc;
    }
    finite
}

/// [`gemm_blocked`] for small products: the operands are in L1 already and packing would cost
/// as much as it saves; only a `b` whose rows are not contiguous (`wᵀ`) is packed, whole.
#[target_feature(enable = "avx512f")]
unsafe fn gemm_direct(kc_max: usize, p: Product) -> bool {
    // SAFETY: as this function's; the loop in a function compiled for AVX-512 ([`gemm_blocked`]).
    PACKED.with_borrow_mut(|(_, pb)| unsafe { direct_with(kc_max, p, pb) })
}

/// [`gemm_direct`] with its packing buffer.
///
/// # Safety
/// As [`gemm`].
#[target_feature(enable = "avx512f")]
unsafe fn direct_with(kc_max: usize, p: Product, pb: &mut Vec<Line>) -> bool {
    let Product { m, n, k, a, b, c, rsc, accumulate, check } = p;
    let packed_b = b.cs != 1 && n > 1;
    let pb = if packed_b { grow(pb, n.next_multiple_of(NR) * kc_max.min(k)) } else { pb.as_mut_ptr() as *mut f32 };
    let mut finite = true;
    let mut pc = 0;
    while pc < k {
        let kc = kc_max.min(k - pc);
        if packed_b {
            pack_b(pb, b, pc, kc, 0, n);
        }
        finite &= tiles::<true>(
            m,
            n,
            kc,
            |ir| (a.ptr.offset(ir as isize * a.rs + pc as isize * a.cs), a.rs, a.cs),
            |jr| match packed_b {
                true => (pb.add(jr * kc) as *const f32, NR as isize),
                false => (b.ptr.offset(pc as isize * b.rs + jr as isize), b.rs),
            },
            c,
            rsc,
            accumulate || pc > 0,
            check && pc + kc == k,
        );
        pc += kc;
    }
    finite
}

/// Products of at least this many multiply-adds, on two or more threads, go to
/// [`gemm_shared`] (`wide`'s are 2²⁹–2³⁰; `slide`'s and `deep`'s, ≤ 2²⁵, keep the static halves).
pub const SHARED_MIN: usize = 1 << 26;
/// The most floats [`gemm_shared`] packs into the buffer all threads read (32 MiB).
pub const SHARED_MAX_FLOATS: usize = 1 << 23;
/// Columns of `c` per piece handed out by [`gemm_shared`] (8 panels of `b`).
const PIECE_COLS: usize = 8 * NR;
/// Rows of `c` per piece when the pieces are cut along the rows (20 panels of `a`).
const PIECE_ROWS: usize = 20 * MR;

thread_local! {
    /// The packed operand a [`gemm_shared`] caller shares with its helpers.
    static SHARED: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// A raw pointer that the threads of one [`gemm_shared`] pass among themselves.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: each thread writes disjoint panels of the buffer (phase 1) or disjoint pieces of `c`
// (phase 2), and reads the shared buffer only after the join that ends phase 1.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The pointer (a method, so that closures capture the whole `Ptr`, not its raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Runs `work(i)` for every `i < pieces` on `threads` threads of the current pool at once, each
/// thread taking the next `i` from a shared counter as it comes free (nested
/// [`crate::nn::par::join`]s).
fn in_turns(threads: usize, pieces: usize, work: &(dyn Fn(usize) + Sync)) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take = || {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= pieces {
                break;
            }
            work(i);
        }
    };
    fn spread(threads: usize, take: &(dyn Fn() + Sync)) {
        if threads <= 1 {
            return take();
        }
        let left = threads / 2;
        crate::nn::par::join(|| spread(left, take), || spread(threads - left, take));
    }
    spread(threads, &take);
}

/// [`gemm`] on `threads` threads, balanced as they go: the smaller side's operand (`a` when
/// `n ≥ m`, else `b`) is packed once, whole, by all threads into one buffer; then the output is
/// cut along the other side into pieces of [`PIECE_COLS`] columns (or [`PIECE_ROWS`] rows) that
/// each thread takes in turn, packing its piece of the other operand itself. A thread slowed by
/// the machine takes fewer pieces, and nothing is packed twice. Each entry is the same chain of
/// FMAs as in [`gemm`] (same `KC` blocks, added to `c` in the same order), so the bits are
/// [`gemm`]'s whatever the thread count and whichever thread took which piece.
///
/// The shared buffer holds `min(m, n)` (rounded up to whole panels) times `k` floats on the
/// calling thread, grown once and kept; callers bound it by [`SHARED_MAX_FLOATS`]. `p.check` and
/// the result: as [`gemm`]'s.
///
/// # Safety
/// As [`gemm`].
pub unsafe fn gemm_shared(p: Product, threads: usize) -> bool {
    let Product { m, n, k, .. } = p;
    let by_cols = n >= m;
    // the shared side, rounded up to whole panels, and each KC block's share of the buffer
    let side = if by_cols { m.next_multiple_of(MR) } else { n.next_multiple_of(NR) };
    let (other, piece) = if by_cols { (n, PIECE_COLS) } else { (m, PIECE_ROWS) };
    // A rayon thread waiting in a join may run a job of another product that runs at the same
    // time in the same pool (never within one training step, whose products run one after
    // another); if that product is large too it finds this thread's buffer in use and packs into
    // a buffer of its own.
    let mut spare = Vec::new();
    SHARED.with(|cell| {
        let mut held = cell.try_borrow_mut();
        let buf = match held.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut spare,
        };
        let shared = Ptr(grow(buf, side * k));
        let product = Shared { p, by_cols, packed: shared, side };
        // phase 1: the shared operand, in pieces of 16 panels per KC block, taken in turn
        let group = 16 * if by_cols { MR } else { NR };
        let per_block = side.div_ceil(group);
        in_turns(threads, per_block * k.div_ceil(KC), &|i| {
            let s = product; // the whole `Shared` (Sync), not its fields
            let (pc, g) = ((i / per_block) * KC, (i % per_block) * group);
            let (kc, len) = (KC.min(k - pc), group.min(if by_cols { m } else { n } - g));
            let dst = s.packed.get().add(pc * side + g * kc);
            // SAFETY: AVX-512F as the caller promises; the panels written are this piece's.
            match by_cols {
                true => pack_a(dst, s.p.a, g, len, pc, kc),
                false => pack_b(dst, s.p.b, pc, kc, g, len),
            }
        });
        // phase 2: pieces of the output along the other side, taken in turn
        let nonfinite = std::sync::atomic::AtomicBool::new(false);
        in_turns(threads, other.div_ceil(piece), &|i| {
            let at = i * piece;
            // SAFETY: as above; the piece of `c` written is this thread's alone.
            if !shared_piece(product, at, piece.min(other - at)) {
                nonfinite.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        // the joins in `in_turns` order every store before this load
        !nonfinite.load(std::sync::atomic::Ordering::Relaxed)
    })
}

/// One product of [`gemm_shared`], as its threads see it.
#[derive(Clone, Copy)]
struct Shared {
    p: Product,
    /// Pieces along the columns (the shared operand is `a`), or along the rows (it is `b`).
    by_cols: bool,
    /// The shared operand, packed: its KC block at `pc` starts at `pc · side`.
    packed: Ptr,
    side: usize,
}
// SAFETY: the operands are only read, while the caller of `gemm_shared` keeps them borrowed;
// `c` and `packed` are written as [`Ptr`] says.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// One piece of a [`gemm_shared`] product: columns `at..at + len` of `c` (`by_cols`; rows
/// otherwise), every KC block, the other operand's piece packed into this thread's buffer;
/// false when the product checks and an entry of the piece is not finite.
#[target_feature(enable = "avx512f")]
unsafe fn shared_piece(s: Shared, at: usize, len: usize) -> bool {
    // SAFETY: as this function's; the loop in a function compiled for AVX-512 ([`gemm_blocked`]).
    PACKED.with_borrow_mut(|(pa, pb)| unsafe { piece_with(s, at, len, pa, pb) })
}

/// [`shared_piece`] with this thread's packing buffers.
///
/// # Safety
/// As [`shared_piece`].
#[target_feature(enable = "avx512f")]
unsafe fn piece_with(s: Shared, at: usize, len: usize, pa: &mut Vec<Line>, pb: &mut Vec<Line>) -> bool {
    let Product { m, n, k, a, b, c, rsc, accumulate, check } = s.p;
    let mut finite = true;
    let own = match s.by_cols {
        true => grow(pb, len.next_multiple_of(NR) * KC.min(k)),
        false => grow(pa, len.next_multiple_of(MR) * KC.min(k)),
    };
    let mut pc = 0;
    while pc < k {
        let kc = KC.min(k - pc);
        let block = s.packed.get().add(pc * s.side) as *const f32;
        let (add, last) = (accumulate || pc > 0, check && pc + kc == k);
        let own_panel = |at: usize| own.add(at * kc) as *const f32;
        let block_panel = |at: usize| block.add(at * kc);
        if s.by_cols {
            pack_b(own, b, pc, kc, at, len);
            let (a_at, b_at) = (|ir| (block_panel(ir), 1, MR as isize), |jr| (own_panel(jr), NR as isize));
            finite &= tiles::<false>(m, len, kc, a_at, b_at, c.add(at), rsc, add, last);
        } else {
            pack_a(own, a, at, len, pc, kc);
            let (a_at, b_at) = (|ir| (own_panel(ir), 1, MR as isize), |jr| (block_panel(jr), NR as isize));
            finite &= tiles::<false>(len, n, kc, a_at, b_at, c.offset(at as isize * rsc), rsc, add, last);
        }
        pc += kc;
    }
    finite
}

/// Grows `buf` (never shrinks it) to hold at least `floats` floats; its start, 64-byte aligned.
fn grow(buf: &mut Vec<Line>, floats: usize) -> *mut f32 {
    let lines = floats.div_ceil(16);
    if buf.len() < lines {
        buf.resize(lines, Line([0.0; 16]));
    }
    buf.as_mut_ptr() as *mut f32
}

/// The micro-tiles of one `kc`-deep block of `c[..m][..n]` (rows `rsc` apart), row panel by row
/// panel: `a_at(ir)` gives the `a` panel of rows `ir..` (pointer, row and column strides),
/// `b_at(jr)` the `b` panel of columns `jr..` (pointer, row stride); see [`tile`] for `DIRECT`
/// and `check`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tiles<const DIRECT: bool>(
    m: usize,
    n: usize,
    kc: usize,
    a_at: impl Fn(usize) -> (*const f32, isize, isize),
    b_at: impl Fn(usize) -> (*const f32, isize),
    c: *mut f32,
    rsc: isize,
    add: bool,
    check: bool,
) -> bool {
    let mut finite = true;
    let mut ir = 0;
    while ir < m {
        let (a, rsa, csa) = a_at(ir);
        let mut jr = 0;
        while jr < n {
            let (b, rsb) = b_at(jr);
            let p = Panels { a, rsa, csa, b, rsb };
            let c_at = c.offset(ir as isize * rsc + jr as isize);
            finite &= tile::<DIRECT>(MR.min(m - ir), NR.min(n - jr), kc, p, c_at, rsc, add, check);
            jr += NR;
        }
        ir += MR;
    }
    finite
}

/// The masks of the two vectors of a tile `cols` wide.
#[inline(always)]
fn masks(cols: usize) -> (__mmask16, __mmask16) {
    let bits = if cols >= 32 { u32::MAX } else { (1u32 << cols) - 1 };
    (bits as u16, (bits >> 16) as u16)
}

/// Where a micro-tile reads its operands: `a[r][d]` at `a + r·rsa + d·csa`, `b[d][j]` at
/// `b + d·rsb + j`.
#[derive(Clone, Copy)]
struct Panels {
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
}

/// One micro-tile: dispatches on its number of rows. `DIRECT = false`: packed panels (the
/// strides in `p` are ignored: 1 and [`MR`] for `a`, [`NR`] for `b`, which is 64-byte aligned);
/// `DIRECT = true`: the operands where they lie, `b`'s rows contiguous. With `check`, returns
/// whether every entry stored is finite (else true).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const DIRECT: bool>(
    rows: usize,
    cols: usize,
    kc: usize,
    p: Panels,
    c: *mut f32,
    rsc: isize,
    add: bool,
    check: bool,
) -> bool {
    let (m0, m1) = masks(cols);
    let out = Out { c, rsc, m0, m1, add, check };
    match rows {
        12 => micro::<12, DIRECT>(kc, p, out),
        11 => micro::<11, DIRECT>(kc, p, out),
        10 => micro::<10, DIRECT>(kc, p, out),
        9 => micro::<9, DIRECT>(kc, p, out),
        8 => micro::<8, DIRECT>(kc, p, out),
        7 => micro::<7, DIRECT>(kc, p, out),
        6 => micro::<6, DIRECT>(kc, p, out),
        5 => micro::<5, DIRECT>(kc, p, out),
        4 => micro::<4, DIRECT>(kc, p, out),
        3 => micro::<3, DIRECT>(kc, p, out),
        2 => micro::<2, DIRECT>(kc, p, out),
        1 => micro::<1, DIRECT>(kc, p, out),
        _ => unreachable!("gradscope internal error: a micro-tile of {rows} rows"),
    }
}

/// Where and how a micro-tile stores its result.
#[derive(Clone, Copy)]
struct Out {
    /// The tile's first entry; rows `rsc` apart.
    c: *mut f32,
    rsc: isize,
    /// The columns of the two vectors inside `c`.
    m0: __mmask16,
    m1: __mmask16,
    /// Add to `c` instead of writing it.
    add: bool,
    /// Check that the entries stored are finite.
    check: bool,
}

/// `c[..R][..cols] (+)= a[..R][..kc] · b[..kc][..cols]`, read as [`tile`] says: for each k,
/// two vectors of `b` times `R` broadcasts of `a`, one FMA chain per entry. With `out.check`,
/// the stored vectors times zero are summed (masked to the tile's columns) into one vector,
/// NaN exactly when one of them is NaN or infinite: false then.
#[target_feature(enable = "avx512f")]
unsafe fn micro<const R: usize, const DIRECT: bool>(kc: usize, p: Panels, out: Out) -> bool {
    let Out { c, rsc, m0, m1, add, check } = out;
    let (rsa, csa, rsb) = if DIRECT { (p.rsa, p.csa, p.rsb) } else { (1, MR as isize, NR as isize) };
    if add {
        for r in 0..R {
            let row = c.offset(r as isize * rsc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(row);
            _mm_prefetch::<_MM_HINT_T0>(row.add(64));
        }
    }
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    let (mut a, mut b) = (p.a, p.b);
    for _ in 0..kc {
        let (b0, b1) = if DIRECT {
            (_mm512_maskz_loadu_ps(m0, b), _mm512_maskz_loadu_ps(m1, b.add(16)))
        } else {
            _mm_prefetch::<_MM_HINT_T0>(b.add(PREFETCH * NR) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(b.add(PREFETCH * NR + 16) as *const i8);
            (_mm512_load_ps(b), _mm512_load_ps(b.add(16)))
        };
        for r in 0..R {
            let x = _mm512_set1_ps(*a.offset(r as isize * rsa));
            lo[r] = _mm512_fmadd_ps(x, b0, lo[r]);
            hi[r] = _mm512_fmadd_ps(x, b1, hi[r]);
        }
        a = a.offset(csa);
        b = b.offset(rsb);
    }
    let zero = _mm512_setzero_ps();
    let mut seen = zero;
    for r in 0..R {
        let row = c.offset(r as isize * rsc);
        let (mut v0, mut v1) = (lo[r], hi[r]);
        if add {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, row), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, row.add(16)), v1);
        }
        if check {
            seen = _mm512_mask3_fmadd_ps(v0, zero, seen, m0);
            seen = _mm512_mask3_fmadd_ps(v1, zero, seen, m1);
        }
        _mm512_mask_storeu_ps(row, m0, v0);
        _mm512_mask_storeu_ps(row.add(16), m1, v1);
    }
    _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(seen, seen) == 0
}

/// Packs `a[ic..ic+mc][pc..pc+kc]` into panels of [`MR`] rows: panel p, depth d, row r at
/// `dst[p·MR·kc + d·MR + r]`; rows past `mc` are zero.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a(dst: *mut f32, a: Operand, ic: usize, mc: usize, pc: usize, kc: usize) {
    let base = a.ptr.offset(ic as isize * a.rs + pc as isize * a.cs);
    if a.rs == 1 {
        // Columns contiguous (a transposed view, ∂W's ∂L/∂yᵀ): MR floats per k and panel. Sixteen
        // depths at a time, panel after panel: each panel's 16 × MR floats are written as one run
        // of whole lines while the 16 columns (rows of ∂L/∂y) stay in L1. Depth by depth, the MR
        // floats of consecutive panels land `kc · MR` floats apart, in the same L1 set, and each
        // partly written line was evicted before the next depth completed it.
        let store: __mmask16 = (1 << MR) - 1;
        let mut d0 = 0;
        while d0 < kc {
            let depths = d0..kc.min(d0 + 16);
            let mut p = 0;
            while p < mc {
                let load: __mmask16 = (1 << MR.min(mc - p)) - 1;
                for d in depths.clone() {
                    let col = base.offset(d as isize * a.cs);
                    _mm512_mask_storeu_ps(dst.add(p * kc + d * MR), store, _mm512_maskz_loadu_ps(load, col.add(p)));
                }
                p += MR;
            }
            d0 += 16;
        }
        return;
    }
    let mut p = 0;
    while p < mc {
        let rows = MR.min(mc - p);
        let panel = dst.add(p * kc);
        let src = base.offset(p as isize * a.rs);
        let mut d = 0;
        if a.cs == 1 {
            // Rows contiguous (x, ∂L/∂y): 16 k at a time, transposed in registers, with the next
            // panel's rows at the same depth on their way in meanwhile.
            let next = src.wrapping_offset(MR as isize * a.rs);
            let ahead = MR.min(mc.saturating_sub(p + MR));
            while d + 16 <= kc {
                for r in 0..ahead {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_offset(r as isize * a.rs + d as isize) as *const i8);
                }
                transpose16(src.add(d), a.rs, rows, panel.add(d * MR), MR, (1 << MR) - 1);
                d += 16;
            }
        }
        for r in 0..MR {
            let row = src.offset(r as isize * a.rs);
            for dd in d..kc {
                *panel.add(dd * MR + r) = if r < rows { *row.offset(dd as isize * a.cs) } else { 0.0 };
            }
        }
        p += MR;
    }
}

/// Packs `b[pc..pc+kc][jc..jc+nc]` into panels of [`NR`] columns: panel p, depth d, column j at
/// `dst[p·NR·kc + d·NR + j]`; columns past `nc` are zero.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b(dst: *mut f32, b: Operand, pc: usize, kc: usize, jc: usize, nc: usize) {
    let base = b.ptr.offset(pc as isize * b.rs + jc as isize * b.cs);
    if b.cs == 1 {
        // Rows contiguous (W, x): a masked copy of each row's run into the panels, depth
        // outermost so that each row is read once, from start to end.
        for d in 0..kc {
            let row = base.offset(d as isize * b.rs);
            let mut p = 0;
            while p < nc {
                let (m0, m1) = masks(nc - p);
                let out = dst.add(p * kc + d * NR);
                _mm512_store_ps(out, _mm512_maskz_loadu_ps(m0, row.add(p)));
                _mm512_store_ps(out.add(16), _mm512_maskz_loadu_ps(m1, row.wrapping_add(p + 16)));
                p += NR;
            }
        }
        return;
    }
    let mut p = 0;
    while p < nc {
        let cols = NR.min(nc - p);
        let panel = dst.add(p * kc);
        let src = base.offset(p as isize * b.cs);
        if b.rs == 1 {
            // Columns contiguous (Wᵀ): 16 × 16 blocks transposed in registers, with the next
            // panel's columns at the same depth on their way in meanwhile.
            let next = src.wrapping_offset(NR as isize * b.cs);
            let ahead = NR.min(nc.saturating_sub(p + NR));
            let mut d = 0;
            while d + 16 <= kc {
                for j in 0..ahead {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_offset(j as isize * b.cs + d as isize) as *const i8);
                }
                for half in 0..2 {
                    let j0 = half * 16;
                    let n_here = cols.saturating_sub(j0).min(16);
                    let out = panel.add(d * NR + j0);
                    if n_here == 16 {
                        transpose16(src.offset(j0 as isize * b.cs + d as isize), b.cs, 16, out, NR, u16::MAX);
                    } else {
                        for dd in 0..16 {
                            for j in 0..16 {
                                *out.add(dd * NR + j) = if j < n_here {
                                    *src.offset((j0 + j) as isize * b.cs + (d + dd) as isize)
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
                d += 16;
            }
            for dd in d..kc {
                for j in 0..NR {
                    *panel.add(dd * NR + j) = if j < cols { *src.offset(j as isize * b.cs + dd as isize) } else { 0.0 };
                }
            }
        } else {
            for d in 0..kc {
                for j in 0..NR {
                    *panel.add(d * NR + j) =
                        if j < cols { *src.offset(d as isize * b.rs + j as isize * b.cs) } else { 0.0 };
                }
            }
        }
        p += NR;
    }
}

/// Writes the transpose of the 16 × 16 block at `src` (rows `ld` apart, each 16 contiguous
/// floats; rows from `rows` on read as zeros) to `dst` (rows `ldd` apart, lanes outside `mask`
/// left alone): `dst[i][j] = src[j][i]`.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(src: *const f32, ld: isize, rows: usize, dst: *mut f32, ldd: usize, mask: __mmask16) {
    let mut r = [_mm512_setzero_ps(); 16];
    for (i, v) in r.iter_mut().enumerate().take(rows) {
        *v = _mm512_loadu_ps(src.offset(i as isize * ld));
    }
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let pd = |x: __m512| _mm512_castps_pd(x);
    let ps = |x: __m512d| _mm512_castpd_ps(x);
    for q in 0..4 {
        let (a0, a1, a2, a3) = (t[4 * q], t[4 * q + 1], t[4 * q + 2], t[4 * q + 3]);
        r[4 * q] = ps(_mm512_unpacklo_pd(pd(a0), pd(a2)));
        r[4 * q + 1] = ps(_mm512_unpackhi_pd(pd(a0), pd(a2)));
        r[4 * q + 2] = ps(_mm512_unpacklo_pd(pd(a1), pd(a3)));
        r[4 * q + 3] = ps(_mm512_unpackhi_pd(pd(a1), pd(a3)));
    }
    for h in 0..2 {
        let o = 8 * h;
        for i in 0..4 {
            t[o + i] = _mm512_shuffle_f32x4::<0x88>(r[o + i], r[o + 4 + i]);
            t[o + 4 + i] = _mm512_shuffle_f32x4::<0xdd>(r[o + i], r[o + 4 + i]);
        }
    }
    for i in 0..8 {
        r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
        r[8 + i] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[8 + i]);
    }
    for (i, v) in r.iter().enumerate() {
        _mm512_mask_storeu_ps(dst.add(i * ldd), mask, *v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|d| a[i * k + d] as f64 * b[d * n + j] as f64).sum();
            }
        }
        c
    }

    #[test]
    fn shared_products_have_the_bits_of_one_thread() {
        if !available() {
            return;
        }
        // pieces along the columns (n ≥ m) and along the rows, edges of panels, pieces and KC
        // blocks, on 2 and 3 threads, written and accumulated
        for &(m, n, k) in &[(37, 600, 300), (256, 2048, 64), (700, 45, 530), (13, 13, 1), (300, 290, 257)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.37).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.29).collect();
            let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect(); // column-major a
            let bt: Vec<f32> = (0..k * n).map(|i| b[(i % k) * n + i / k]).collect(); // column-major b
            let (a_rows, a_cols) = (
                Operand { ptr: a.as_ptr(), rs: k as isize, cs: 1 },
                Operand { ptr: at.as_ptr(), rs: 1, cs: m as isize },
            );
            let (b_rows, b_cols) = (
                Operand { ptr: b.as_ptr(), rs: n as isize, cs: 1 },
                Operand { ptr: bt.as_ptr(), rs: 1, cs: k as isize },
            );
            for (a_op, b_op, accumulate) in [(a_rows, b_rows, false), (a_rows, b_cols, true), (a_cols, b_rows, true)] {
                let start: Vec<f32> = (0..m * n).map(|i| (i % 17) as f32 * 0.5).collect();
                let mut one = start.clone();
                let p = Product {
                    m,
                    n,
                    k,
                    a: a_op,
                    b: b_op,
                    c: one.as_mut_ptr(),
                    rsc: n as isize,
                    accumulate,
                    check: false,
                };
                unsafe { gemm(p) };
                for threads in [2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut many = start.clone();
                    // raw pointers are not Send: through the pool as addresses
                    let (out, pa, pb) = (many.as_mut_ptr() as usize, a_op.ptr as usize, b_op.ptr as usize);
                    pool.install(|| unsafe {
                        let a_op = Operand { ptr: pa as *const f32, ..a_op };
                        let b_op = Operand { ptr: pb as *const f32, ..b_op };
                        let c = out as *mut f32;
                        gemm_shared(
                            Product { m, n, k, a: a_op, b: b_op, c, rsc: n as isize, accumulate, check: false },
                            threads,
                        )
                    });
                    let same = one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{m}×{n}×{k} on {threads} threads, accumulate {accumulate}");
                }
            }
        }
    }

    /// `check` answers exactly "is every entry of `c` finite now", on every path (direct, blocked,
    /// shared by columns and by rows), written and accumulated, whether the NaN or infinity comes
    /// from `a`, from `b`, from an overflowing sum, from `c` itself or from the last KC block
    /// and the last tile.
    #[test]
    fn check_tells_whether_every_entry_stored_is_finite() {
        if !available() {
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for &(m, n, k) in &[(13, 33, 17), (64, 32, 32), (100, 70, 300), (37, 600, 300), (700, 45, 530)] {
            for case in 0..6 {
                let mut a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.37).collect();
                let mut b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.29).collect();
                let mut start: Vec<f32> = (0..m * n).map(|i| (i % 17) as f32 * 0.5).collect();
                match case {
                    1 => a[(m / 2) * k + k - 1] = f32::NAN,
                    2 => b[(k / 3) * n + n - 1] = f32::INFINITY,
                    3 => a.iter_mut().for_each(|x| *x *= 3e37), // the sums overflow
                    4 => start[m * n - 1] = f32::NEG_INFINITY,  // only if accumulated
                    5 => a[m * k - 1] = f32::INFINITY,          // the last row, the last tile
                    _ => {}
                }
                let (a_op, b_op) = (
                    Operand { ptr: a.as_ptr(), rs: k as isize, cs: 1 },
                    Operand { ptr: b.as_ptr(), rs: n as isize, cs: 1 },
                );
                for accumulate in [false, true] {
                    for threads in [1, 2] {
                        let mut c = start.clone();
                        let out = c.as_mut_ptr() as usize;
                        let (pa, pb) = (a_op.ptr as usize, b_op.ptr as usize);
                        let finite = pool.install(|| unsafe {
                            let a_op = Operand { ptr: pa as *const f32, ..a_op };
                            let b_op = Operand { ptr: pb as *const f32, ..b_op };
                            let c = out as *mut f32;
                            let p = Product { m, n, k, a: a_op, b: b_op, c, rsc: n as isize, accumulate, check: true };
                            match threads {
                                1 => gemm(p),
                                _ => gemm_shared(p, 2),
                            }
                        });
                        let want = c.iter().all(|x| x.is_finite());
                        assert_eq!(
                            finite, want,
                            "{m}×{n}×{k}, case {case}, accumulate {accumulate}, {threads} threads"
                        );
                        if case == 0 {
                            assert!(want, "the finite case must stay finite");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transpose16_transposes() {
        if !available() {
            return;
        }
        let src: Vec<f32> = (0..16 * 20).map(|i| i as f32).collect();
        let mut dst = vec![0.0f32; 16 * 18];
        unsafe { transpose16(src.as_ptr(), 20, 16, dst.as_mut_ptr(), 18, u16::MAX) };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(dst[i * 18 + j], src[j * 20 + i], "({i}, {j})");
            }
        }
    }

    #[test]
    fn products_of_every_layout_and_edge_match_f64() {
        if !available() {
            return;
        }
        for &(m, n, k) in
            &[(1, 1, 1), (12, 32, 16), (13, 33, 17), (64, 32, 32), (100, 70, 300), (25, 530, 257), (1030, 40, 9)]
        {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
            let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect(); // column-major a
            let bt: Vec<f32> = (0..k * n).map(|i| b[(i % k) * n + i / k]).collect(); // column-major b
            let want = reference(m, n, k, &a, &b);
            let tol = 1e-4 * k as f64;
            for (a_op, b_op) in [
                (
                    Operand { ptr: a.as_ptr(), rs: k as isize, cs: 1 },
                    Operand { ptr: b.as_ptr(), rs: n as isize, cs: 1 },
                ),
                (
                    Operand { ptr: at.as_ptr(), rs: 1, cs: m as isize },
                    Operand { ptr: bt.as_ptr(), rs: 1, cs: k as isize },
                ),
            ] {
                for accumulate in [false, true] {
                    let mut c = vec![1.0f32; m * (n + 3)];
                    let rsc = (n + 3) as isize;
                    unsafe {
                        gemm(Product { m, n, k, a: a_op, b: b_op, c: c.as_mut_ptr(), rsc, accumulate, check: false })
                    };
                    for i in 0..m {
                        for j in 0..n + 3 {
                            let got = c[i * (n + 3) + j] as f64;
                            let w = if j >= n { 1.0 } else { want[i * n + j] + if accumulate { 1.0 } else { 0.0 } };
                            assert!((got - w).abs() <= tol, "{m}×{n}×{k} ({i}, {j}): {got} vs {w}");
                        }
                    }
                }
            }
        }
    }
}
