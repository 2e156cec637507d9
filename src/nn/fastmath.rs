//! Vectorised f32 activations through rten-vecmath (the SIMD kernels of the RTen ML runtime,
//! dispatched at run time to AVX-512, AVX2 or NEON).
//!
//! glibc's scalar `tanhf` and `expf` cost 10–20 ns an element; the 50-layer tanh benchmark
//! applies tanh to 819 200 elements per step, so the activation alone took longer than every
//! matrix product together. rten's kernels are within 3 ULP (tanh) and 4 ULP (sigmoid) of the
//! correctly rounded value — the same order as float32's summation noise in the products around
//! them. f64 (gradient checks, `probe`) keeps the scalar definitions in `activation.rs`.

use crate::nn::Activation;
use crate::nn::activation::sigmoid_cap;
use rten_simd::ops::{BitOps, NumOps};
use rten_simd::{Isa, SimdUnaryOp};
use rten_vecmath::{Sigmoid, Tanh};
use std::mem::MaybeUninit;

/// σ with its input clamped as [`crate::nn::activation::sigmoid`] clamps it (no subnormal output).
struct ClampedSigmoid;

impl SimdUnaryOp<f32> for ClampedSigmoid {
    #[inline(always)]
    fn eval<I: Isa>(&self, isa: I, x: I::F32) -> I::F32 {
        let ops = isa.f32();
        let cap = sigmoid_cap::<f32>();
        Sigmoid {}.eval(isa, ops.clamp(x, ops.splat(-cap), ops.splat(cap)))
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
}
