//! Elementwise activations φ and their derivatives φ′, defined exactly as PyTorch defines them.
//!
//! ```text
//! identity    φ(z) = z                                  φ′ = 1
//! sigmoid     φ(z) = 1 / (1 + e^(−z))                   φ′ = φ(1 − φ)         ≤ 1/4
//! tanh        φ(z) = tanh z                             φ′ = 1 − φ²           ≤ 1
//! relu        φ(z) = max(0, z)                          φ′ = [z > 0]          (0 at z = 0, as torch)
//! leaky_relu  φ(z) = z if z > 0 else s·z                φ′ = 1 or s           (s = negative_slope)
//! elu         φ(z) = z if z > 0 else α(e^z − 1), α = 1  φ′ = 1 or α e^z
//! selu        φ(z) = λ·elu_α(z), λ ≈ 1.0507, α ≈ 1.6733 φ′ = λ or λ α e^z
//! gelu        φ(z) = z Φ(z) (exact erf form)            φ′ = Φ(z) + z 𝒩(z)
//! silu        φ(z) = z σ(z)                             φ′ = σ(z)(1 + z(1 − σ(z)))
//! softsign    φ(z) = z / (1 + |z|)                      φ′ = 1 / (1 + |z|)²
//! softplus    φ(z) = ln(1 + e^z), z if z > 20 (β = 1)   φ′ = σ(z), 1 if z > 20
//! ```
//! Φ and 𝒩 are the standard normal CDF and density. Sources: the `torch.nn` module docs and
//! ATen's CPU kernels (`aten/src/ATen/native/cpu/Activation.cpp`); SELU constants from
//! Klambauer et al. 2017.

use crate::error::Named;
use crate::nn::{Scalar, simd};
use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use serde::{Deserialize, Serialize};

/// SELU's λ (`scale`), as in `torch.nn.SELU`.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
/// SELU's α, as in `torch.nn.SELU`.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// Softplus switches to the identity above this input (PyTorch's default `threshold`).
pub const SOFTPLUS_THRESHOLD: f64 = 20.0;
/// PyTorch's default `negative_slope` of `leaky_relu`.
pub const DEFAULT_NEGATIVE_SLOPE: f64 = 0.01;

/// Declares [`Activation`] and [`ActivationKind`] from one list of variants, each with the line
/// `--help` shows for it (and leaky_relu with its slope), and the two maps between them.
macro_rules! activations {
    ($(#[doc = $help:literal] $variant:ident $({ #[doc = $fdoc:literal] $field:ident: $ty:ty })?,)*) => {
        /// An elementwise nonlinearity.
        #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case", tag = "name")]
        pub enum Activation {
            $(#[doc = $help] $variant $({ #[doc = $fdoc] $field: $ty })?,)*
        }

        /// An activation by name, as configs and flags spell it (snake case); [`Activation::new`]
        /// adds leaky_relu's slope.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(rename_all = "snake_case")]
        #[value(rename_all = "snake_case")]
        pub enum ActivationKind {
            $(#[doc = $help] $variant,)*
        }

        impl Activation {
            /// The activation `kind`; `negative_slope` is used by `leaky_relu` only.
            pub fn new(kind: ActivationKind, negative_slope: f64) -> Self {
                match kind {
                    $(ActivationKind::$variant => Self::$variant $({ $field: negative_slope })?,)*
                }
            }

            /// Which activation, without its parameter.
            pub fn kind(&self) -> ActivationKind {
                match self {
                    $(Self::$variant { .. } => ActivationKind::$variant,)*
                }
            }
        }
    };
}

activations! {
    /// φ(z) = z
    Identity,
    /// 1 / (1 + e^(−z))
    Sigmoid,
    /// tanh z
    Tanh,
    /// max(0, z)
    Relu,
    /// z if z > 0, else negative_slope·z
    LeakyRelu {
        /// Slope for negative inputs (PyTorch default 0.01).
        negative_slope: f64
    },
    /// z if z > 0, else e^z − 1
    Elu,
    /// λ·elu_α(z), λ ≈ 1.0507, α ≈ 1.6733
    Selu,
    /// z·Φ(z), the exact erf form
    Gelu,
    /// z·σ(z)
    Silu,
    /// z / (1 + |z|)
    Softsign,
    /// ln(1 + e^z), z above 20
    Softplus,
}

/// Entries of z, h and φ′ taken at a time by [`Activation::forward_with_derivative`]: 3 × 8 KiB
/// in f32, within a 32–48 KiB L1 data cache.
pub const CHUNK: usize = 2048;

/// The bound on σ's input: −ln(smallest normal) − 1.
#[inline]
pub fn sigmoid_cap<F: Scalar>() -> F {
    -F::min_positive_value().ln() - F::one()
}

/// σ(z) = 1/(1 + e^(−z)), with z clamped to ±(−ln(smallest normal) − 1) (±86 in f32, ±707 in
/// f64) so that e^(−z) never overflows and σ never becomes subnormal: subnormal arithmetic is
/// 100× slower on x86, and a saturated deep sigmoid network is full of it. Beyond the clamp
/// σ differs from the exact value by less than the smallest normal number.
#[inline]
pub fn sigmoid<F: Scalar>(z: F) -> F {
    let cap = sigmoid_cap::<F>();
    let z = z.max(-cap).min(cap);
    F::one() / (F::one() + (-z).exp())
}

impl Activation {
    /// The snake-case name (its [`ActivationKind`]'s).
    pub fn name(&self) -> String {
        self.kind().name()
    }

    /// φ(z).
    #[inline]
    pub fn f<F: Scalar>(&self, z: F) -> F {
        use Activation::*;
        let zero = F::zero();
        match *self {
            Identity => z,
            Sigmoid => sigmoid(z),
            Tanh => z.tanh(),
            Relu => {
                if z > zero {
                    z
                } else {
                    zero
                }
            }
            LeakyRelu { negative_slope } => {
                if z > zero {
                    z
                } else {
                    z * F::of(negative_slope)
                }
            }
            Elu => {
                if z > zero {
                    z
                } else {
                    z.exp_m1()
                }
            }
            Selu => {
                let l = F::of(SELU_SCALE);
                if z > zero { l * z } else { l * F::of(SELU_ALPHA) * z.exp_m1() }
            }
            Gelu => F::of(0.5) * z * (F::one() + (z * F::of(std::f64::consts::FRAC_1_SQRT_2)).erf()),
            Silu => z * sigmoid(z),
            Softsign => z / (F::one() + z.abs()),
            Softplus => {
                if z > F::of(SOFTPLUS_THRESHOLD) {
                    z
                } else {
                    z.exp().ln_1p()
                }
            }
        }
    }

    /// φ′(z), the local derivative backpropagation multiplies by.
    #[inline]
    pub fn df<F: Scalar>(&self, z: F) -> F {
        use Activation::*;
        let (zero, one) = (F::zero(), F::one());
        match *self {
            Identity => one,
            Sigmoid => {
                let s = sigmoid(z);
                s * (one - s)
            }
            Tanh => {
                let t = z.tanh();
                one - t * t
            }
            Relu => {
                if z > zero {
                    one
                } else {
                    zero
                }
            }
            LeakyRelu { negative_slope } => {
                if z > zero {
                    one
                } else {
                    F::of(negative_slope)
                }
            }
            Elu => {
                if z > zero {
                    one
                } else {
                    z.exp()
                }
            }
            Selu => {
                let l = F::of(SELU_SCALE);
                if z > zero { l } else { l * F::of(SELU_ALPHA) * z.exp() }
            }
            Gelu => {
                let cdf = F::of(0.5) * (one + (z * F::of(std::f64::consts::FRAC_1_SQRT_2)).erf());
                let pdf = (F::of(-0.5) * z * z).exp() * F::of(0.398_942_280_401_432_7);
                cdf + z * pdf
            }
            Silu => {
                let s = sigmoid(z);
                s * (one + z * (one - s))
            }
            Softsign => {
                let d = one + z.abs();
                one / (d * d)
            }
            Softplus => {
                if z > F::of(SOFTPLUS_THRESHOLD) {
                    one
                } else {
                    sigmoid(z)
                }
            }
        }
    }

    /// sup_z φ′(z): the largest local gain this activation can give a gradient.
    ///
    /// Probes call a unit saturated when φ′ falls below 1/20 of this.
    pub fn max_derivative(&self) -> f64 {
        use Activation::*;
        match *self {
            Sigmoid => 0.25,
            LeakyRelu { negative_slope } => negative_slope.abs().max(1.0),
            Selu => SELU_SCALE * SELU_ALPHA,
            // at z = √2, where φ″ = 𝒩(z)(2 − z²) = 0: Φ(√2) + √2·𝒩(√2)
            Gelu => 1.128_904_145_185_155,
            // at the root of φ″ = σ′(z)(2 + z(1 − 2σ(z))), z ≈ 2.399357
            Silu => 1.099_839_320_128_866_8,
            Identity | Tanh | Relu | Elu | Softsign | Softplus => 1.0,
        }
    }

    /// h = φ(z), elementwise.
    pub fn forward<F: Scalar>(&self, z: ArrayView2<F>, mut h: ArrayViewMut2<F>) {
        if let (Some(z), Some(h)) = (z.as_slice(), h.as_slice_mut()) {
            if !F::activation_fast(*self, z, h) {
                simd::activation(*self, z, h);
            }
            return;
        }
        Zip::from(h).and(z).for_each(|h, &z| *h = self.f(z));
    }

    /// h = φ(z) and `dphi` = φ′(z) in one forward pass, so that backward only multiplies.
    ///
    /// sigmoid and tanh take φ′ from the output (σ′ = h(1 − h), tanh′ = 1 − h²), as PyTorch's
    /// backward does, instead of evaluating the exponential again.
    ///
    /// Contiguous buffers go in chunks of [`CHUNK`] entries, φ′ of each chunk right after its φ,
    /// while z and h are still in the L1 cache (the same bits as two whole passes); a large
    /// tensor in two halves on two threads ([`simd::split_point`], cut between chunks: the same
    /// bits again).
    pub fn forward_with_derivative<F: Scalar>(
        &self,
        z: ArrayView2<F>,
        mut h: ArrayViewMut2<F>,
        mut dphi: ArrayViewMut2<F>,
    ) {
        if let (Some(z), Some(h), Some(d)) = (z.as_slice(), h.as_slice_mut(), dphi.as_slice_mut()) {
            match simd::split_point(z.len(), CHUNK) {
                Some(mid) => {
                    let ((z1, z2), (h1, h2), (d1, d2)) = (z.split_at(mid), h.split_at_mut(mid), d.split_at_mut(mid));
                    crate::nn::par::join(|| self.chunked(z1, h1, d1), || self.chunked(z2, h2, d2));
                }
                None => self.chunked(z, h, d),
            }
            return;
        }
        self.forward(z, h.view_mut());
        Zip::from(dphi).and(z).and(&h).for_each(|d, &z, &h| *d = self.df_given_output(z, h));
    }

    /// [`Activation::forward_with_derivative`] on contiguous slices, on the calling thread
    /// whatever their length (the same bits).
    pub(crate) fn forward_with_derivative_here<F: Scalar>(&self, z: &[F], h: &mut [F], d: &mut [F]) {
        self.chunked(z, h, d);
    }

    /// h = φ(z) and φ′ over contiguous slices, chunk by chunk ([`CHUNK`]).
    fn chunked<F: Scalar>(&self, z: &[F], h: &mut [F], d: &mut [F]) {
        for ((z, h), d) in z.chunks(CHUNK).zip(h.chunks_mut(CHUNK)).zip(d.chunks_mut(CHUNK)) {
            if F::activation_fast_with_derivative(*self, z, h, d) {
                continue;
            }
            if !F::activation_fast(*self, z, h) {
                simd::activation(*self, z, h);
            }
            simd::derivative(*self, z, h, d);
        }
    }

    /// φ′(z) given also h = φ(z), the way [`Activation::forward_with_derivative`] computes it.
    #[inline]
    pub fn df_given_output<F: Scalar>(&self, z: F, h: F) -> F {
        match *self {
            Activation::Sigmoid => h * (F::one() - h),
            Activation::Tanh => F::one() - h * h,
            _ => self.df(z),
        }
    }

    /// [`Activation::backward`], adding also Σ_rows ∂L/∂z to `grad_bias` (the next linear layer's
    /// ∂L/∂b, `[fan_out]`) in the same pass: the bits of `backward` followed by the bias gradient
    /// of [`crate::nn::Linear::backward`].
    pub fn backward_with_bias<F: Scalar>(
        &self,
        dphi: ArrayView2<F>,
        grad_h: ArrayView2<F>,
        mut grad_z: ArrayViewMut2<F>,
        grad_bias: &mut [F],
    ) {
        debug_assert_eq!(grad_z.ncols(), grad_bias.len());
        let w = grad_bias.len();
        if let (Some(d), Some(gh), true, Some(cut)) = (
            dphi.as_slice(),
            grad_h.as_slice(),
            grad_z.is_standard_layout(),
            simd::split_point(grad_z.len(), 1).map(|_| w / 2 / simd::LINE * simd::LINE).filter(|&c| c > 0),
        ) {
            // two threads, each on half of the columns: every column's sum keeps its row order
            let (b1, b2) = grad_bias.split_at_mut(cut);
            let (z1, z2) = grad_z.view_mut().split_at(ndarray::Axis(1), cut);
            let half = |mut gz: ArrayViewMut2<F>, acc: &mut [F], from: usize| {
                for (i, mut row) in gz.rows_mut().into_iter().enumerate() {
                    let cols = i * w + from..i * w + from + acc.len();
                    let out = row.as_slice_mut().expect("gradscope internal error: row layout");
                    simd::mul_add_rows(out, &gh[cols.clone()], &d[cols], acc);
                }
            };
            crate::nn::par::join(|| half(z1, b1, 0), || half(z2, b2, cut));
            return;
        }
        if let (Some(d), Some(gh), Some(gz)) = (dphi.as_slice(), grad_h.as_slice(), grad_z.as_slice_mut()) {
            return simd::mul_add_rows(gz, gh, d, grad_bias);
        }
        self.backward(dphi, grad_h, grad_z.view_mut());
        for row in grad_z.rows() {
            grad_bias.iter_mut().zip(row).for_each(|(b, &g)| *b += g);
        }
    }

    /// ∂L/∂z = ∂L/∂h ⊙ φ′(z): the chain rule's one factor per layer, with φ′(z) from
    /// [`Activation::forward_with_derivative`].
    pub fn backward<F: Scalar>(&self, dphi: ArrayView2<F>, grad_h: ArrayView2<F>, mut grad_z: ArrayViewMut2<F>) {
        if let (Some(d), Some(gh), Some(gz)) = (dphi.as_slice(), grad_h.as_slice(), grad_z.as_slice_mut()) {
            return simd::mul(gz, gh, d);
        }
        Zip::from(grad_z).and(grad_h).and(dphi).for_each(|gz, &gh, &d| *gz = gh * d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    use clap::ValueEnum;

    /// Large tensors are cut in two halves on two threads (φ with φ′ by entries, ∂L/∂z with
    /// ∂L/∂b by columns): the bits of the whole pass on one thread.
    #[test]
    fn split_passes_give_the_bits_of_whole_ones() {
        let (rows, w) = (70, 1030); // above simd::SPLIT_MIN_LEN, a ragged cut of the columns
        let z = Array2::from_shape_fn((rows, w), |(r, c)| ((r * 131 + c * 7) as f32 * 0.013).sin() * 4.0);
        let gh = Array2::from_shape_fn((rows, w), |(r, c)| ((r * 17 + c * 3) as f32 * 0.021).cos());
        let run = |threads: usize, act: Activation| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                assert_eq!(simd::split_point(rows * w, CHUNK).is_some(), threads == 2, "the test must split");
                let (mut h, mut d) = (Array2::zeros((rows, w)), Array2::zeros((rows, w)));
                act.forward_with_derivative(z.view(), h.view_mut(), d.view_mut());
                let (mut gz, mut gb) = (Array2::zeros((rows, w)), vec![0.5f32; w]);
                act.backward_with_bias(d.view(), gh.view(), gz.view_mut(), &mut gb);
                let mut sgd = z.clone().into_raw_vec_and_offset().0;
                simd::sgd_split(&mut sgd, gh.as_slice().unwrap(), 0.01);
                (h, d, gz, gb, sgd)
            })
        };
        let bits = |a: &[f32]| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
            let (one, two) = (run(1, act), run(2, act));
            assert_eq!(bits(one.0.as_slice().unwrap()), bits(two.0.as_slice().unwrap()), "{act:?} h");
            assert_eq!(bits(one.1.as_slice().unwrap()), bits(two.1.as_slice().unwrap()), "{act:?} φ′");
            assert_eq!(bits(one.2.as_slice().unwrap()), bits(two.2.as_slice().unwrap()), "{act:?} ∂L/∂z");
            assert_eq!(bits(&one.3), bits(&two.3), "{act:?} ∂L/∂b");
            assert_eq!(bits(&one.4), bits(&two.4), "sgd");
        }
    }

    fn all() -> Vec<Activation> {
        ActivationKind::value_variants().iter().map(|&k| Activation::new(k, 0.1)).collect()
    }

    #[test]
    fn names_round_trip() {
        for a in all() {
            assert_eq!(Activation::new(ActivationKind::parse("activation", &a.name()).unwrap(), 0.1), a);
            // serde (config files) spells every name as clap (flags) does
            assert_eq!(serde_json::to_string(&a.kind()).unwrap(), format!("\"{}\"", a.name()));
        }
        assert_eq!(Activation::new(ActivationKind::LeakyRelu, 0.2), Activation::LeakyRelu { negative_slope: 0.2 });
        let e = ActivationKind::parse("activation", "sigmod").unwrap_err().to_string();
        assert!(e.contains("unknown activation 'sigmod' (did you mean 'sigmoid'?); valid: identity, sigmoid"), "{e}");
    }

    #[test]
    fn derivative_from_output_agrees() {
        for a in all() {
            for i in -50..=50 {
                let z = i as f64 * 0.17;
                assert!((a.df_given_output(z, a.f(z)) - a.df(z)).abs() < 1e-15, "{}", a.name());
            }
        }
    }

    /// Central differences of φ in f64 agree with φ′ away from the kinks at 0.
    #[test]
    fn derivative_matches_finite_differences() {
        let h = 1e-5;
        for a in all() {
            for i in -80..=80 {
                let z = i as f64 * 0.1 + 0.013; // keep off z = 0 and softplus' threshold
                let fd = (a.f(z + h) - a.f(z - h)) / (2.0 * h);
                let an = a.df(z);
                assert!((fd - an).abs() <= 1e-7 * (1.0 + an.abs()), "{} at {z}: fd {fd} vs {an}", a.name());
            }
        }
    }

    /// The constants in `max_derivative` are the suprema of φ′ (dense scan, both signs).
    #[test]
    fn max_derivative_is_the_supremum() {
        for a in all() {
            let scan = (-200_000..=200_000).map(|i| a.df(i as f64 * 1e-4)).fold(f64::MIN, f64::max);
            let m = a.max_derivative();
            assert!(scan <= m + 1e-12, "{}: scan {scan} > {m}", a.name());
            assert!(scan >= m - 1e-6, "{}: scan {scan} well below {m}", a.name());
        }
    }

    #[test]
    fn reference_values() {
        // The defining formulas evaluated with Python's math module (erf, expm1, log1p) in f64.
        let cases: [(&str, [f64; 2]); 6] = [
            ("gelu", [-0.100_210_801_903_287_13, 0.530_625_443_443_848_9]),
            ("selu", [-1.365_814_353_367_252_7, 0.735_490_691_148_836_3]),
            ("elu", [-0.776_869_839_851_570_2, 0.7]),
            ("silu", [-0.273_638_285_709_534_5, 0.467_731_440_517_716_26]),
            ("softplus", [0.201_413_277_982_752_4, 1.103_186_048_885_458]),
            ("softsign", [-0.6, 0.411_764_705_882_352_9]),
        ];
        for (name, want) in cases {
            let a = Activation::new(ActivationKind::parse("activation", name).unwrap(), 0.01);
            for (z, w) in [-1.5, 0.7].into_iter().zip(want) {
                assert!((a.f(z) - w).abs() < 1e-14, "{name}({z}) = {} vs {w}", a.f(z));
            }
        }
    }
}
