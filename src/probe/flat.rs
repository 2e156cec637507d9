//! Probes over flat slices: the statistics of [`forward_stats`] and the norms of the optimizer's
//! measured loop for tensors gradscope did not lay out itself, the layers of a PyTorch model that
//! `gradscope.watch` hands over (python/src/lib.rs). One pass each, vectorised (AVX-512/AVX2
//! clones chosen at run time), so that the watch reads a layer while it is in cache.

use super::{LayerStats, forward_stats};
use crate::nn::kernel::LANES;
use crate::nn::{Activation, ForwardView, Scalar};
use ndarray::ArrayView2;

/// The forward statistics of one layer's output (act_mean, act_std, dact_mean, saturation, and
/// with `detail` the percentiles and the φ′ histogram) exactly as gradscope's own probes take
/// them ([`forward_stats`]), from flat slices: `z`, the layer's output, and `h = φ(z)`, the
/// output of the activation after it (`activation`), or without one `h` = `z` itself. φ′ is
/// taken from (z, h) as the backward pass does ([`Activation::df_given_output`]) into `dphi`, a
/// scratch buffer. Without an activation, dact_mean and saturation are those of the identity
/// (1 and 0): the caller, who knows there is none, does not report them.
///
/// # Panics
/// If `z` and `h` differ in length.
pub fn layer_forward_stats<F: Scalar>(
    z: &[F],
    h: &[F],
    activation: Option<Activation>,
    detail: Option<&mut Vec<f64>>,
    dphi: &mut Vec<F>,
) -> LayerStats {
    assert_eq!(z.len(), h.len(), "a layer's output and its activation's differ in size");
    let view = |xs| ArrayView2::from_shape((1, z.len()), xs).expect("a flat slice is a 1 × n matrix");
    let dphi = activation.map(|a| {
        dphi_into(a, z, h, dphi);
        view(&dphi[..])
    });
    let v =
        ForwardView { index: 0, activation: activation.unwrap_or(Activation::Identity), z: view(z), h: view(h), dphi };
    let mut s = LayerStats::default();
    forward_stats(&v, &mut s, detail);
    s
}

/// φ′ from (z, h) into `out` ([`Activation::df_given_output`]), the activation matched once,
/// outside the loop, so that the common ones vectorise.
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
fn dphi_into<F: Scalar>(a: Activation, z: &[F], h: &[F], out: &mut Vec<F>) {
    out.clear();
    let one = F::one();
    match a {
        Activation::Tanh => out.extend(h.iter().map(|&h| one - h * h)),
        Activation::Sigmoid => out.extend(h.iter().map(|&h| h * (one - h))),
        Activation::Relu => out.extend(z.iter().map(|&z| if z > F::zero() { one } else { F::zero() })),
        _ => out.extend(z.iter().zip(h).map(|(&z, &h)| a.df_given_output(z, h))),
    }
}

pub use crate::nn::simd::sum_sq;

/// Copies `src` into `dst` and returns Σ src², in one pass (the weights' copy before an update,
/// for ‖ΔW‖, and ‖W‖ with it); the sum in the order of [`crate::nn::kernel::sum_sq`]. The copy is written
/// past the caches ([`stream_copy`]): it is read once, after the optimizer's update, and the
/// training step's own data stay in cache (measured by the watch of a 20-layer MLP: a probed step
/// cost 0.016 plain steps less than with ordinary stores, over ten alternated runs; docs/python.md).
///
/// # Panics
/// If the slices differ in length.
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
pub fn copy_sum_sq<F: Scalar>(src: &[F], dst: &mut [F]) -> f64 {
    assert_eq!(src.len(), dst.len(), "copy between slices of different sizes");
    // by blocks that stay in L1 between the copy and the sum; the lanes carried across blocks
    // (a multiple of LANES long) and the tail summed last, as kernel::sum_sq does
    const BLOCK: usize = 64 * LANES;
    let mut lanes = [0.0f64; LANES];
    let split = src.len() - src.len() % LANES;
    for (s, d) in src[..split].chunks(BLOCK).zip(dst[..split].chunks_mut(BLOCK)) {
        stream_copy(s, d);
        for c in s.chunks_exact(LANES) {
            for (l, &x) in lanes.iter_mut().zip(c) {
                *l += x.f64() * x.f64();
            }
        }
    }
    stream_fence();
    dst[split..].copy_from_slice(&src[split..]);
    let tail = src[split..].iter().fold(0.0f64, |t, &x| t + x.f64() * x.f64());
    tail + lanes.iter().fold(0.0f64, |t, &l| t + l)
}

/// `dst.copy_from_slice(src)` with non-temporal stores where the target allows (x86-64: SSE2's
/// `movntdq`, 16 bytes at a time, combined into whole lines): the lines are not read first and
/// do not evict the caller's data. Call [`stream_fence`] before the copy is read by anyone else.
#[inline(always)]
fn stream_copy<F: Scalar>(src: &[F], dst: &mut [F]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let bytes = std::mem::size_of_val(src);
        let (s, d) = (src.as_ptr().cast::<u8>(), dst.as_mut_ptr().cast::<u8>());
        if (d as usize).is_multiple_of(16) {
            let whole = bytes - bytes % 16;
            // SAFETY: both slices hold `bytes` bytes (equal lengths, same type); every access
            // below is within [0, whole) ⊂ [0, bytes); `d` is 16-byte aligned, as movntdq
            // requires, and `loadu` takes any alignment. F is plain data (f32 or f64).
            unsafe {
                let mut i = 0;
                while i < whole {
                    _mm_stream_si128(d.add(i).cast::<__m128i>(), _mm_loadu_si128(s.add(i).cast::<__m128i>()));
                    i += 16;
                }
                std::ptr::copy_nonoverlapping(s.add(whole), d.add(whole), bytes - whole);
            }
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// Orders the non-temporal stores of [`stream_copy`] before any later store (`sfence`).
#[inline(always)]
fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` has no operands and is part of SSE, which every x86-64 CPU has.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    }
}

/// Σ (a − b)², each difference taken in F (as the tensors' own subtraction: a difference of two
/// nearby weights is exact) and squared in f64; nothing is written.
///
/// # Panics
/// If the slices differ in length.
#[multiversion::multiversion(targets = "simd")] // AVX-512/AVX2 clones, chosen at run time (nn/simd.rs)
pub fn diff_sum_sq<F: Scalar>(a: &[F], b: &[F]) -> f64 {
    assert_eq!(a.len(), b.len(), "difference of slices of different sizes");
    let mut lanes = [0.0f64; LANES];
    let split = a.len() - a.len() % LANES;
    for (x, y) in a[..split].chunks_exact(LANES).zip(b[..split].chunks_exact(LANES)) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            let d = (x - y).f64();
            *l += d * d;
        }
    }
    let tail = a[split..].iter().zip(&b[split..]).fold(0.0f64, |t, (&x, &y)| t + (x - y).f64() * (x - y).f64());
    tail + lanes.iter().fold(0.0f64, |t, &l| t + l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ActivationKind;

    fn data(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919) % 1009) as f32 / 1009.0 - 0.4) * scale).collect()
    }

    /// The flat probe gives the numbers of a hand computation: mean, standard deviation
    /// (dividing by the count), mean φ′ and the saturated fraction of a tanh layer.
    #[test]
    fn layer_forward_stats_match_a_direct_computation() {
        let z = data(1000, 6.0);
        let h: Vec<f32> = z.iter().map(|z| z.tanh()).collect();
        let tanh = Activation::new(ActivationKind::Tanh, 0.01);
        let s = layer_forward_stats(&z, &h, Some(tanh), None, &mut Vec::new());
        let n = h.len() as f64;
        let mean = h.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let std = (h.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n).sqrt();
        let dphi: Vec<f64> = h.iter().map(|&x| f64::from(1.0 - x * x)).collect();
        let saturated = dphi.iter().filter(|&&d| d < 1.0 / 20.0).count() as f64 / n;
        assert!((s.act_mean - mean).abs() < 1e-6 && (s.act_std - std).abs() < 1e-6, "{s:?}");
        assert!((s.dact_mean - dphi.iter().sum::<f64>() / n).abs() < 1e-6);
        assert_eq!(s.saturation, saturated);
        assert!(saturated > 0.1 && saturated < 0.9, "the data saturate some units: {saturated}");
        assert!(s.act_p50.is_nan() && s.dact_hist.is_empty(), "no detail asked");
        let mut buf = Vec::new();
        let d = layer_forward_stats(&z, &h, Some(tanh), Some(&mut buf), &mut Vec::new());
        assert!(d.act_p05 < d.act_p50 && d.act_p50 < d.act_p95);
        assert!((d.dact_hist.iter().sum::<f64>() - 1.0).abs() < 1e-12 && d.dact_hist[0] == saturated);
        // without an activation: h is the layer's output
        let lin = layer_forward_stats(&z, &z, None, None, &mut Vec::new());
        let zmean = z.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        assert!((lin.act_mean - zmean).abs() < 1e-6);
    }

    /// The hoisted φ′ loop gives `df_given_output`'s bits for every activation.
    #[test]
    fn dphi_into_is_df_given_output() {
        use clap::ValueEnum;
        let z = data(300, 8.0);
        for &kind in ActivationKind::value_variants() {
            let a = Activation::new(kind, 0.1);
            let h: Vec<f32> = z.iter().map(|&z| a.f(z)).collect();
            let mut out = Vec::new();
            dphi_into(a, &z, &h, &mut out);
            let want: Vec<f32> = z.iter().zip(&h).map(|(&z, &h)| a.df_given_output(z, h)).collect();
            assert_eq!(out, want, "{kind:?}");
        }
    }

    /// The one-pass norms equal plain f64 sums, at lengths around the lane width; the copy copies.
    #[test]
    fn norms_and_the_copy_match_plain_sums() {
        for n in [0usize, 1, 15, 16, 17, 100, 1025, 2 * 64 * LANES + 5] {
            let a = data(n, 3.0);
            let b: Vec<f32> = a.iter().map(|&x| x + 1e-3 * x.signum()).collect();
            let want: f64 = a.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
            assert!((sum_sq(&a) - want).abs() <= 1e-12 * want.max(1.0), "n {n}");
            let mut dst = vec![0.0f32; n];
            assert_eq!(copy_sum_sq(&a, &mut dst), sum_sq(&a), "n {n}");
            assert_eq!(dst, a);
            // a destination off the 16-byte grid takes the ordinary copy; float64 streams too
            let mut off = vec![0.0f32; n + 1];
            assert_eq!(copy_sum_sq(&a, &mut off[1..]), sum_sq(&a), "n {n}");
            assert_eq!(off[1..], a[..]);
            let a64: Vec<f64> = a.iter().map(|&x| f64::from(x) / 3.0).collect();
            let mut d64 = vec![0.0f64; n];
            assert_eq!(copy_sum_sq(&a64, &mut d64), sum_sq(&a64), "n {n}");
            assert_eq!(d64, a64);
            let d: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum();
            assert!((diff_sum_sq(&a, &b) - d).abs() <= 1e-12 * d.max(1e-300), "n {n}");
        }
        // squares in f64: a vanishing gradient's norm does not underflow
        assert!(sum_sq(&[1e-30f32; 4]) > 0.0);
    }
}
