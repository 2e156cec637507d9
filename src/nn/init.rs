//! Weight initialisation schemes, from a seeded RNG.
//!
//! ```text
//! pytorch          W, b ~ U(−1/√fan_in, 1/√fan_in)      torch.nn.Linear's default; the
//!                                                        "standard" init of Glorot & Bengio 2010
//! xavier_uniform   W ~ U(±g·√(6/(fan_in+fan_out))), b = 0        torch.nn.init.xavier_uniform_
//! xavier_normal    W ~ N(0, g²·2/(fan_in+fan_out)),  b = 0        torch.nn.init.xavier_normal_
//! kaiming_uniform  W ~ U(±g·√(3/fan_in)),            b = 0        torch.nn.init.kaiming_uniform_
//! kaiming_normal   W ~ N(0, g²/fan_in),              b = 0        torch.nn.init.kaiming_normal_
//! lecun_normal     W ~ N(0, 1/fan_in),               b = 0        LeCun et al. 1998; SELU paper
//! orthogonal       W = √σ_w²·Q, b ~ N(0, σ_b²)        torch.nn.init.orthogonal_ (gain √σ_w²);
//!                                                      Saxe et al. 2014, Pennington et al. 2017
//! gaussian         W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²)  the mean-field convention,
//!                                                          Poole et al. 2016
//! ```
//! g is `torch.nn.init.calculate_gain` of the hidden activation (1 for identity and sigmoid,
//! 5/3 for tanh, √2 for relu, √(2/(1+s²)) for leaky_relu, 3/4 for selu). PyTorch has no gain
//! for elu, gelu, silu, softsign or softplus; gradscope uses 1 for them. The output layer,
//! which has no activation, uses g = 1. Weights are drawn in f64 and rounded, so an f32 and an
//! f64 model built from the same seed hold the same numbers up to rounding.

use crate::nn::Activation;
use ndarray::{Array1, Array2};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// An initialisation scheme (snake case in configs and flags: `xavier_uniform`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Init {
    /// `torch.nn.Linear`'s default.
    Pytorch,
    /// Glorot uniform.
    XavierUniform,
    /// Glorot normal.
    XavierNormal,
    /// He uniform (fan_in mode).
    KaimingUniform,
    /// He normal (fan_in mode).
    KaimingNormal,
    /// N(0, 1/fan_in).
    LecunNormal,
    /// A random orthogonal matrix scaled by √σ_w².
    Orthogonal,
    /// N(0, σ_w²/fan_in) weights and N(0, σ_b²) biases.
    Gaussian,
}

/// `torch.nn.init.calculate_gain` for an activation (1 where PyTorch has none).
pub fn gain(activation: Activation) -> f64 {
    match activation {
        Activation::Tanh => 5.0 / 3.0,
        Activation::Relu => 2f64.sqrt(),
        Activation::LeakyRelu { negative_slope } => (2.0 / (1.0 + negative_slope * negative_slope)).sqrt(),
        Activation::Selu => 0.75,
        _ => 1.0,
    }
}

impl Init {
    /// The variance of one weight times fan_in, i.e. the mean-field σ_w² this scheme amounts
    /// to for a layer of these fans and this gain.
    pub fn sigma_w2(&self, fan_in: usize, fan_out: usize, gain: f64, sigma_w2: f64) -> f64 {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        match self {
            Init::Pytorch => 1.0 / 3.0,
            Init::XavierUniform | Init::XavierNormal => gain * gain * 2.0 * fi / (fi + fo),
            Init::KaimingUniform | Init::KaimingNormal => gain * gain,
            Init::LecunNormal => 1.0,
            // Q has orthonormal rows or columns: entries have variance 1/max(fan_in, fan_out)
            Init::Orthogonal => sigma_w2 * fi / fi.max(fo),
            Init::Gaussian => sigma_w2,
        }
    }

    /// Draws W `[fan_out, fan_in]` and b `[fan_out]`.
    pub fn draw<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        fan_in: usize,
        fan_out: usize,
        gain: f64,
        sigma_w2: f64,
        sigma_b2: f64,
    ) -> (Array2<f64>, Array1<f64>) {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let uniform = |rng: &mut R, bound: f64, shape: (usize, usize)| {
            let u = Uniform::new_inclusive(-bound, bound).expect("finite bound");
            Array2::from_shape_simple_fn(shape, || u.sample(rng))
        };
        let normal = |rng: &mut R, std: f64, shape: (usize, usize)| {
            let n = Normal::new(0.0, std).expect("finite std");
            Array2::from_shape_simple_fn(shape, || n.sample(rng))
        };
        let shape = (fan_out, fan_in);
        let zeros = Array1::zeros(fan_out);
        match self {
            Init::Pytorch => {
                let bound = 1.0 / fi.sqrt();
                let w = uniform(rng, bound, shape);
                let b = uniform(rng, bound, (1, fan_out)).into_shape_with_order(fan_out).expect("1×n");
                (w, b)
            }
            Init::XavierUniform => (uniform(rng, gain * (6.0 / (fi + fo)).sqrt(), shape), zeros),
            Init::XavierNormal => (normal(rng, gain * (2.0 / (fi + fo)).sqrt(), shape), zeros),
            Init::KaimingUniform => (uniform(rng, gain * (3.0 / fi).sqrt(), shape), zeros),
            Init::KaimingNormal => (normal(rng, gain / fi.sqrt(), shape), zeros),
            Init::LecunNormal => (normal(rng, 1.0 / fi.sqrt(), shape), zeros),
            Init::Orthogonal => {
                let w = orthogonal(rng, fan_out, fan_in) * sigma_w2.sqrt();
                (w, gaussian_bias(rng, fan_out, sigma_b2))
            }
            Init::Gaussian => {
                let w = normal(rng, (sigma_w2 / fi).sqrt(), shape);
                (w, gaussian_bias(rng, fan_out, sigma_b2))
            }
        }
    }
}

fn gaussian_bias<R: Rng + ?Sized>(rng: &mut R, n: usize, sigma_b2: f64) -> Array1<f64> {
    if sigma_b2 == 0.0 {
        return Array1::zeros(n);
    }
    let d = Normal::new(0.0, sigma_b2.sqrt()).expect("finite σ_b");
    Array1::from_shape_simple_fn(n, || d.sample(rng))
}

/// A `rows × cols` matrix with orthonormal rows (rows ≤ cols) or columns (rows ≥ cols),
/// made as `torch.nn.init.orthogonal_` makes it: QR of a Gaussian matrix, with Q's columns
/// multiplied by the signs of R's diagonal so the result is Haar-distributed.
pub fn orthogonal<R: Rng + ?Sized>(rng: &mut R, rows: usize, cols: usize) -> Array2<f64> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    let n = Normal::new(0.0, 1.0).expect("unit normal");
    // torch draws [rows, cols] row-major, then transposes when rows < cols
    let draws: Vec<f64> = (0..rows * cols).map(|_| n.sample(rng)).collect();
    let a =
        faer::Mat::<f64>::from_fn(
            tall,
            short,
            |i, j| if rows >= cols { draws[i * cols + j] } else { draws[j * cols + i] },
        );
    let qr = a.qr();
    let q = qr.compute_thin_Q();
    let r = qr.thin_R();
    let signs: Vec<f64> = (0..short).map(|j| if r[(j, j)] < 0.0 { -1.0 } else { 1.0 }).collect();
    Array2::from_shape_fn((rows, cols), |(i, j)| if rows >= cols { q[(i, j)] * signs[j] } else { q[(j, i)] * signs[i] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Named;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn var(a: &Array2<f64>) -> f64 {
        let m = a.mean().unwrap();
        a.mapv(|v| (v - m) * (v - m)).mean().unwrap()
    }

    #[test]
    fn variances_match_the_formulas() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (fi, fo) = (400, 300);
        let g = gain(Activation::Tanh);
        for &init in <Init as clap::ValueEnum>::value_variants() {
            let (w, b) = init.draw(&mut rng, fi, fo, g, 1.7, 0.3);
            assert_eq!(w.dim(), (fo, fi));
            assert_eq!(b.len(), fo);
            let want = init.sigma_w2(fi, fo, g, 1.7) / fi as f64;
            let got = var(&w);
            assert!((got / want - 1.0).abs() < 0.02, "{}: var {got} vs {want}", init.name());
        }
    }

    #[test]
    fn orthogonal_is_orthogonal_both_ways() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (r, c) in [(5, 5), (7, 3), (3, 7)] {
            let q = orthogonal(&mut rng, r, c);
            let gram = if r >= c { q.t().dot(&q) } else { q.dot(&q.t()) };
            let eye = Array2::<f64>::eye(r.min(c));
            assert!((&gram - &eye).iter().all(|v| v.abs() < 1e-12), "{r}x{c}: {gram}");
        }
    }

    #[test]
    fn gains_follow_torch() {
        assert_eq!(gain(Activation::Sigmoid), 1.0);
        assert_eq!(gain(Activation::Tanh), 5.0 / 3.0);
        assert_eq!(gain(Activation::Relu), 2f64.sqrt());
        assert!((gain(Activation::LeakyRelu { negative_slope: 0.01 }) - (2.0 / 1.0001f64).sqrt()).abs() < 1e-15);
        assert_eq!(gain(Activation::Selu), 0.75);
    }
}
