//! The one lane-accumulate kernel: sums of `g(x)` over a slice that vectorise and stay accurate
//! in f32. Probes, the non-finite guard and the optimizers' measured loops all sum through it.
//!
//! The sum is kept in [`LANES`] lanes of F (so that the loop vectorises: a single accumulator
//! serialises it), flushed to f64 every [`FLUSH`] entries (a lane of f32 adds at most 64 numbers
//! before its sum is widened). The order of additions is fixed, so the bits do not depend on the
//! vector width.

use crate::nn::Scalar;

/// Lanes of the accumulators: wide enough for AVX-512 f32.
pub const LANES: usize = 16;

/// Entries summed in lanes of F before the lanes are widened to f64 (64 per lane).
pub const FLUSH: usize = 64 * LANES;

/// Σ g(x) over `xs`: per block of [`FLUSH`] entries, [`LANES`] lanes of F plus the block's tail
/// summed in f64, added to the f64 total.
#[inline(always)]
pub fn lane_sum<F: Scalar>(xs: &[F], g: impl Fn(F) -> F) -> f64 {
    let mut total = 0.0f64;
    for block in xs.chunks(FLUSH) {
        let mut lanes = [F::zero(); LANES];
        let chunks = block.chunks_exact(LANES);
        let tail: f64 = chunks.remainder().iter().map(|&x| g(x).f64()).sum();
        for c in chunks {
            for (l, &x) in lanes.iter_mut().zip(c) {
                *l += g(x);
            }
        }
        total += widen(&lanes) + tail;
    }
    total
}

/// The lanes' sum in f64, lane 0 first.
#[inline(always)]
pub fn widen<F: Scalar>(lanes: &[F; LANES]) -> f64 {
    lanes.iter().map(|l| l.f64()).sum::<f64>()
}

/// Adds `lanes` (widened) to `total` and zeroes them: the flush of a measured loop that keeps
/// its own lanes because it also writes (the optimizers' update).
#[inline(always)]
pub fn flush<F: Scalar>(total: &mut f64, lanes: &mut [F; LANES]) {
    *total += widen(lanes);
    *lanes = [F::zero(); LANES];
}

/// `acc + x²` in f64, by one fused multiply-add where `FMA` (a clone compiled with FMA) and F is
/// f32: an f32's square needs at most 48 significant bits and lies within f64's exponent range,
/// so it is exact in f64, and the fused `acc + x·x` rounds the same exact sum once — the bits of
/// the multiply and the add, in fewer instructions (the squares of the probes' norms were bound
/// by the multiply, the add and the conversion: docs/performance.md, session 13). An f64's
/// square is not exact, so f64 keeps the two roundings.
#[inline(always)]
pub fn add_square<F: Scalar, const FMA: bool>(acc: f64, x: F) -> f64 {
    let x = x.f64();
    if FMA && std::mem::size_of::<F>() == 4 { x.mul_add(x, acc) } else { acc + x * x }
}

/// Σ x² with each square taken in f64: [`LANES`] f64 lanes, then the tail in order (the order the
/// optimizers' measured loop sums its norms in, so both give the same bits); `FMA` as in
/// [`add_square`] (the same bits either way).
///
/// In f32, x² underflows to a subnormal below |x| ≈ 1e-19 and to 0 below 1e-22, and the vanishing
/// gradients gradscope measures go far lower (a 50-layer sigmoid network's first layer: 2e-43,
/// recorded as 0 when squared in f32).
#[inline(always)]
pub fn sum_sq<F: Scalar, const FMA: bool>(xs: &[F]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(0.0f64, |t, &x| add_square::<F, FMA>(t, x));
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = add_square::<F, FMA>(*l, x);
        }
    }
    tail + lanes.iter().fold(0.0f64, |t, &l| t + l)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lane sum equals a plain f64 sum of the same numbers up to f32 rounding, at every
    /// length around the lane and flush boundaries.
    #[test]
    fn lane_sum_matches_a_plain_sum() {
        for n in [0usize, 1, 15, 16, 17, 1023, 1024, 1025, 5000] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let want: f64 = xs.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            let got = lane_sum(&xs, |x| x * x);
            assert!((got - want).abs() <= 1e-6 * want.max(1.0), "n {n}: {got} vs {want}");
            let xs64: Vec<f64> = xs.iter().map(|&x| f64::from(x)).collect();
            assert!((lane_sum(&xs64, |x| x) - xs64.iter().sum::<f64>()).abs() < 1e-9, "n {n}");
        }
    }

    /// The fused square-and-add gives the bits of the multiply and the add for every f32
    /// (exact squares): across the whole exponent range, subnormals and the largest included,
    /// onto sums of every size; and for f64 (squares not exact) it is never used.
    #[test]
    fn fused_squares_of_f32_have_the_bits_of_the_multiply_and_the_add() {
        let mut state = 0x2545_f491_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let specials = [0.0f32, -0.0, 1.4e-45, -1.4e-45, 1.2e-38, 3.4e38, -3.4e38, 1.0, 0.1];
        for i in 0..200_000 {
            // every bit pattern of a finite f32 is as likely (so every exponent), then the specials
            let x = specials.get(i).copied().unwrap_or_else(|| {
                let x = f32::from_bits(next());
                if x.is_finite() { x } else { 0.5 }
            });
            let acc = f64::from(f32::from_bits(next() & 0x7f7f_ffff)) * if i % 2 == 0 { 1.0 } else { -1e-3 };
            let plain = add_square::<f32, false>(acc, x);
            assert_eq!(add_square::<f32, true>(acc, x).to_bits(), plain.to_bits(), "acc {acc:e}, x {x:e}");
            assert_eq!(plain.to_bits(), (acc + f64::from(x) * f64::from(x)).to_bits());
        }
        let (a, x) = (0.1f64, 1.0f64 / 3.0);
        assert_eq!(add_square::<f64, true>(a, x).to_bits(), (a + x * x).to_bits(), "f64 keeps two roundings");
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.731).sin() * 1e-20).collect();
        assert_eq!(sum_sq::<f32, true>(&xs).to_bits(), sum_sq::<f32, false>(&xs).to_bits());
    }
}
