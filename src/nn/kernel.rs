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
}
