//! Vectorised f32 activations through rten-simd and rten-vecmath (the SIMD kernels of the RTen
//! ML runtime, dispatched at run time to AVX-512, AVX2 or NEON).
//!
//! glibc's scalar `tanhf` and `expf` cost 10–20 ns an element; the 50-layer tanh benchmark
//! applies tanh to 819 200 elements per step, so the activation alone took longer than every
//! matrix product together. rten's tanh is within 3 ULP of the correctly rounded value, our σ
//! (rten's exponential with one scale, `ClampedSigmoid`) within 1.2 — the same order as
//! float32's summation noise in the products around them. f64 (gradient checks, `probe`) keeps
//! the scalar definitions in `activation.rs`.

use crate::nn::Activation;
use crate::nn::activation::sigmoid_cap;
use rten_simd::ops::{BitOps, FloatOps, IntOps, NumOps};
use rten_simd::{Isa, Simd, SimdOp, SimdUnaryOp};
use rten_vecmath::Tanh;
use std::mem::MaybeUninit;

/// σ with its input clamped as [`crate::nn::activation::sigmoid`] clamps it (no subnormal output).
///
/// 1 / (1 + e^(−z)) with e^(−z) by the range reduction and polynomial of rten-vecmath's `Exp`
/// (its constants: ln 2 in two parts, a degree-6 polynomial on |r| ≤ ln 2 / 2), but 2^k applied
/// as one scale: the clamp keeps |z| ≤ 86.3, so k = round(−z·log₂e) stays within ±125 and 2^k is
/// a normal float, where `Exp` (for any input) needs two scales and the overflow selects. Within
/// 1.2 ULP of the exact σ, as rten's `Sigmoid` (tests below), and a third faster with φ′ (about
/// 1.0 cycle an entry against 1.5 for rten's σ and a second pass for φ′, AVX-512, Zen 4;
/// docs/performance.md, session 13).
struct ClampedSigmoid;

impl SimdUnaryOp<f32> for ClampedSigmoid {
    #[inline(always)]
    fn eval<I: Isa>(&self, isa: I, x: I::F32) -> I::F32 {
        let (ops, ints) = (isa.f32(), isa.i32());
        let cap = sigmoid_cap::<f32>();
        let y = ops.neg(ops.clamp(x, ops.splat(-cap), ops.splat(cap)));
        // e^y = 2^k · e^r, k = round(y / ln 2), r = y − k·ln 2 (ln 2 in a high and a low part)
        let k = ops.round_ties_even(ops.mul(y, ops.splat(std::f32::consts::LOG2_E)));
        let r = ops.mul_add(k, ops.splat(-6.931_457_5e-1), y);
        let r = ops.mul_add(k, ops.splat(-1.428_606_8e-6), r);
        let mut p = ops.splat(1.378_059_4e-3);
        for c in [8.373_124_5e-3, 4.166_953_6e-2, 1.666_647_2e-1, 4.999_998_5e-1, 1.0, 1.0] {
            p = ops.mul_add(p, r, ops.splat(c));
        }
        let two_k: I::F32 = ints.shift_left::<23>(ints.add(ops.to_int_trunc(k), ints.splat(127))).reinterpret_cast();
        ops.div(ops.one(), ops.add(ops.one(), ops.mul(p, two_k)))
    }
}

/// z·σ(z) with the same clamp inside σ.
struct ClampedSilu;

impl SimdUnaryOp<f32> for ClampedSilu {
    #[inline(always)]
    fn eval<I: Isa>(&self, isa: I, x: I::F32) -> I::F32 {
        let ops = isa.f32();
        ops.mul(x, ClampedSigmoid.eval(isa, x))
    }
}

/// h = op(z), read from `z` and written to `h` in one pass (no copy of z into h first).
fn map(op: &impl SimdUnaryOp<f32>, z: &[f32], h: &mut [f32]) {
    assert_eq!(z.len(), h.len(), "gradscope internal error: activation lengths");
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and `map` only ever writes initialised
    // values into it (every element, once), so `h` stays initialised.
    let out = unsafe { &mut *(h as *mut [f32] as *mut [MaybeUninit<f32>]) };
    op.map(z, out);
}

/// h = φ(z) with a vectorised kernel; false when `act` has none (the caller loops in scalar).
pub fn forward(act: Activation, z: &[f32], h: &mut [f32]) -> bool {
    match act {
        Activation::Sigmoid => map(&ClampedSigmoid, z, h),
        Activation::Tanh => map(&Tanh {}, z, h),
        Activation::Silu => map(&ClampedSilu, z, h),
        _ => return false,
    }
    true
}

/// h = φ(z) and φ′ into `d` in one pass, for the φ whose φ′ is a function of h (sigmoid:
/// h(1 − h), tanh: 1 − h²): the bits of [`forward`] and of [`Activation::df_given_output`]
/// (tested), without reading h back in a second pass. False for every other φ.
pub fn forward_with_derivative(act: Activation, z: &[f32], h: &mut [f32], d: &mut [f32]) -> bool {
    assert!(z.len() == h.len() && z.len() == d.len(), "gradscope internal error: activation lengths");
    match act {
        Activation::Sigmoid | Activation::Tanh => WithDerivative { act, z, h, d }.dispatch(),
        _ => return false,
    }
    true
}

/// [`forward_with_derivative`]'s pass, dispatched by rten-simd to the best instruction set.
struct WithDerivative<'a> {
    act: Activation,
    z: &'a [f32],
    h: &'a mut [f32],
    d: &'a mut [f32],
}

impl SimdOp for WithDerivative<'_> {
    type Output = ();

    #[inline(always)]
    fn eval<I: Isa>(self, isa: I) {
        let ops = isa.f32();
        let one = ops.one();
        // (the closures inlined, as rten's own map inlines its op: a call per vector, outside
        // the dispatched function's target features, made a one-thread `tiny` step 5× slower)
        match self.act {
            Activation::Sigmoid => each_with_derivative(
                isa,
                self.z,
                self.h,
                self.d,
                #[inline(always)]
                |x| ClampedSigmoid.eval(isa, x),
                #[inline(always)]
                |h| ops.mul(h, ops.sub(one, h)),
            ),
            _ => each_with_derivative(
                isa,
                self.z,
                self.h,
                self.d,
                #[inline(always)]
                |x| Tanh {}.eval(isa, x),
                #[inline(always)]
                |h| ops.sub(one, ops.mul(h, h)),
            ),
        }
    }
}

/// `h[i] = phi(z[i])`, `d[i] = dphi(h[i])` a vector at a time, the tail under a mask.
#[inline(always)]
fn each_with_derivative<I: Isa>(
    isa: I,
    z: &[f32],
    h: &mut [f32],
    d: &mut [f32],
    phi: impl Fn(I::F32) -> I::F32,
    dphi: impl Fn(I::F32) -> I::F32,
) {
    let ops = isa.f32();
    let (n, lanes) = (z.len(), ops.len());
    let mut i = 0;
    // SAFETY (each load and store): the three slices have length n (asserted by the caller);
    // the whole vectors cover entries i..i + lanes ≤ n, the mask the entries i..n of the tail.
    while i + lanes <= n {
        unsafe {
            let y = phi(ops.load_ptr(z.as_ptr().add(i)));
            ops.store_ptr(y, h.as_mut_ptr().add(i));
            ops.store_ptr(dphi(y), d.as_mut_ptr().add(i));
        }
        i += lanes;
    }
    if i < n {
        let mask = ops.first_n_mask(n - i);
        unsafe {
            let y = phi(ops.load_ptr_mask(z.as_ptr().add(i), mask));
            ops.store_ptr_mask(y, h.as_mut_ptr().add(i), mask);
            ops.store_ptr_mask(dphi(y), d.as_mut_ptr().add(i), mask);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within a few ULP of the exact values (f64) wherever σ's clamp does not act (|z| ≤ 80),
    /// and the same clamp as the scalar f32 path beyond.
    #[test]
    fn vectorised_kernels_agree_with_the_scalar_definitions() {
        let z: Vec<f32> = (-160_000..160_000).map(|i| i as f32 * 5e-4).chain([0.0, -0.0]).collect();
        for act in [Activation::Sigmoid, Activation::Tanh, Activation::Silu] {
            let mut h = vec![0.0f32; z.len()];
            assert!(forward(act, &z, &mut h));
            for (&z, &h) in z.iter().zip(&h) {
                let exact = act.f(z as f64);
                let ulp = (exact.abs() as f32 * f32::EPSILON).max(f32::MIN_POSITIVE) as f64;
                assert!((h as f64 - exact).abs() <= 4.0 * ulp, "{}({z}) = {h}, exact {exact}", act.name());
            }
        }
        // read from z into h: the bits of the kernel applied in place
        type InPlace = fn(&mut [f32]);
        let kernels: [(Activation, InPlace); 3] = [
            (Activation::Sigmoid, |h| ClampedSigmoid.map_mut(h)),
            (Activation::Tanh, |h| Tanh {}.map_mut(h)),
            (Activation::Silu, |h| ClampedSilu.map_mut(h)),
        ];
        for (act, op) in kernels {
            let mut h = vec![0.0f32; z.len() - 3];
            forward(act, &z[3..], &mut h);
            let mut in_place = z[3..].to_vec();
            op(&mut in_place);
            assert!(h.iter().zip(&in_place).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", act.name());
        }
        assert!(!forward(Activation::Gelu, &[0.0], &mut [0.0]));
        let far = [-1e4f32, -100.0, 100.0, 1e4];
        let mut h = [0.0f32; 4];
        forward(Activation::Sigmoid, &far, &mut h);
        assert!(h.iter().zip(far).all(|(&h, z)| (h - Activation::Sigmoid.f(z)).abs() <= f32::EPSILON && h.is_normal()));
    }

    /// σ within 1.2 ULP of the exact value over |z| ≤ 80 (the claim of [`ClampedSigmoid`]);
    /// NaN and ±∞ clamped as the scalar path clamps them (`f32::max` drops a NaN: σ(NaN) is
    /// σ(−86.3), in both).
    #[test]
    fn sigmoid_is_within_1_2_ulp_and_clamps_as_the_scalar_path() {
        let z: Vec<f32> = (-160_000..160_000).map(|i| i as f32 * 5e-4).collect();
        let mut h = vec![0.0f32; z.len()];
        forward(Activation::Sigmoid, &z, &mut h);
        let worst = z.iter().zip(&h).fold(0.0f64, |w, (&z, &h)| {
            let exact = 1.0 / (1.0 + (-(z as f64)).exp());
            w.max((h as f64 - exact).abs() / (exact as f32 * f32::EPSILON) as f64)
        });
        assert!(worst <= 1.2, "worst {worst} ULP");
        let odd = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, -86.4, 86.4];
        let (mut h, mut d) = ([0.0f32; 5], [0.0f32; 5]);
        forward_with_derivative(Activation::Sigmoid, &odd, &mut h, &mut d);
        for (&z, &h) in odd.iter().zip(&h) {
            let scalar = crate::nn::activation::sigmoid(z);
            assert!((h - scalar).abs() <= f32::EPSILON * scalar && h.is_normal(), "σ({z}) = {h}, scalar {scalar}");
        }
    }

    /// One pass gives the bits of [`forward`] for h and of [`Activation::df_given_output`] for
    /// φ′, at lengths around the vector widths (the masked tail).
    #[test]
    fn the_pass_with_derivative_has_the_bits_of_the_two_passes() {
        for n in [0usize, 1, 7, 8, 15, 16, 17, 31, 33, 1000] {
            let z: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin() * 9.0 - 0.5).collect();
            for act in [Activation::Sigmoid, Activation::Tanh] {
                let (mut h, mut d, mut want) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
                assert!(forward_with_derivative(act, &z, &mut h, &mut d));
                forward(act, &z, &mut want);
                for i in 0..n {
                    assert_eq!(h[i].to_bits(), want[i].to_bits(), "{} n {n}: h[{i}]", act.name());
                    assert_eq!(
                        d[i].to_bits(),
                        act.df_given_output(z[i], h[i]).to_bits(),
                        "{} n {n}: φ′[{i}]",
                        act.name()
                    );
                }
            }
        }
        for act in [Activation::Silu, Activation::Relu, Activation::Gelu] {
            assert!(!forward_with_derivative(act, &[0.0], &mut [0.0], &mut [0.0]), "{}", act.name());
        }
    }
}
