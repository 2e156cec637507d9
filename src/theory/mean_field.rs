//! Mean-field signal propagation in a wide random MLP with W_ij ~ N(0, σ_w²/fan_in),
//! b_i ~ N(0, σ_b²): the length map, the correlation map, the gradient factor χ₁ and the depth
//! scales ξ_q and ξ_c.
//!
//! ```text
//! first layer   q¹ = σ_w² q⁰ + σ_b²,   q⁰ = ‖x‖²/fan_in                Poole et al. 2016, eq. 3
//! length map    q^l = σ_w² ∫Dz φ(√q^{l−1} z)² + σ_b²  →  q*           Poole et al. 2016, eq. 3
//! corr. map     c^l = (σ_w² ∫Dz₁Dz₂ φ(u₁)φ(u₂) + σ_b²) / q^l          Poole et al. 2016, eq. 5
//!               u₁ = √q z₁,  u₂ = √q (c z₁ + √(1 − c²) z₂)
//! gradient      χ₁ = σ_w² ∫Dz φ′(√q* z)²                               Poole et al. 2016, eq. 7;
//!               E‖∂L/∂z^l‖² = χ₁ E‖∂L/∂z^{l+1}‖²            Schoenholz et al. 2017, eqs. 12–13
//! corr. slope   χ_c = σ_w² ∫Dz₁Dz₂ φ′(u₁)φ′(u₂) at (q*, c*)       Schoenholz et al. 2017, eq. 8
//! depth scales  ξ_q⁻¹ = −ln[χ₁ + σ_w² ∫Dz φ″(√q* z) φ(√q* z)]       Schoenholz et al. 2017, eq. 7
//!               ξ_c⁻¹ = −ln χ_c(c*)                                 Schoenholz et al. 2017, eq. 9
//! trainable     L ≲ 6 ξ_c                                   Schoenholz et al. 2017, sec. 5, fig. 5
//! ```
//!
//! Ordered phase (χ₁ < 1): c* = 1 and χ_c(1) = χ₁, so ξ_c⁻¹ = −ln χ₁. Chaotic phase (χ₁ > 1):
//! c* < 1 is the stable fixed point of the correlation map and ξ_c comes from its slope there,
//! not from χ₁. On the critical line χ₁ = 1 the correlation map's slope at c* = 1 is 1: c^l
//! approaches 1 polynomially, ξ_c is infinite. The same holds wherever the length map has no
//! finite positive fixed point (σ_b² = 0 in the ordered phase: q^l → 0; relu, elu, gelu, … above
//! their critical σ_w²: q^l → ∞): φ is then linear near 0, or linear on each side far out, the
//! normalised correlation map stops depending on q, and its slope at c = 1 tends to 1. For relu,
//! whose map never depends on q when σ_b² = 0, 1 − c^l ≈ 9π²/(2 l²) (Hayou, Doucet & Rousseau
//! 2019, "On the impact of the activation function on deep neural networks training", sec. 3).
//!
//! Why the slope of the correlation map at c = 1 is χ₁ at a fixed point: by Price's theorem
//! ∂/∂c ∫Dz₁Dz₂ φ(u₁)φ(u₂) = q ∫Dz₁Dz₂ φ′(u₁)φ′(u₂), so ∂c^l/∂c^{l−1} = σ_w² q χ_c-integral / q^l,
//! which is χ_c where q^l = q^{l−1} = q*. gradscope computes that slope,
//! `σ_w² q ∫φ′φ′ / (σ_w² ∫φ² + σ_b²)`, everywhere, so the degenerate cases come out right.
//!
//! Why the correlation map has one stable fixed point in [0, 1]: with Hermite coefficients
//! a_k of φ(√q z), ∫Dz₁Dz₂ φ(u₁)φ(u₂) = Σ a_k² c^k (Mehler's formula), a power series with
//! non-negative coefficients, so c ↦ c^{l+1} is increasing and convex on [0, 1] with c = 1 a
//! fixed point; c^{l+1} − c is convex, non-negative at 0, and has a second root below 1 exactly
//! when its slope at 1 exceeds 1.
//!
//! The squared gradient of layer l, not only at the fixed point: backpropagation gives
//! ∂L/∂z^l = φ′(z^l) ⊙ (W^{l+1})ᵀ ∂L/∂z^{l+1}, and with W^{l+1} independent of the rest
//! (the gradient independence assumption of Schoenholz et al. 2017, sec. 4),
//! E‖∂L/∂z^l‖² = σ_w² ∫Dz φ′(√q^l z)² · E‖∂L/∂z^{l+1}‖² whatever the widths: the factor follows
//! q^l from the input and tends to χ₁ as q^l → q*.
//!
//! Every integral uses the engine's own φ and φ′ ([`Activation::f`], [`Activation::df`]) and
//! [`d2f`] for φ″.

use super::quadrature;
use crate::error::{Error, Result};
use crate::nn::activation::{SELU_ALPHA, SELU_SCALE, SOFTPLUS_THRESHOLD, sigmoid};
use crate::nn::{Activation, Init};
use serde::Serialize;

/// |χ − 1| below this counts as critical (the integrals are accurate to about 1e-12).
pub const CRITICAL_TOL: f64 = 1e-9;
/// Schoenholz et al. 2017 (sec. 5, fig. 5): networks train when the depth is below about 6 ξ_c.
pub const TRAINABLE_XI_C: f64 = 6.0;
/// q^l below this counts as shrinking to 0.
const Q_ZERO: f64 = 1e-200;
/// q^l above this counts as growing without bound.
const Q_INFINITE: f64 = 1e15;
/// Where the q → 0 limit is evaluated.
const Q_LIMIT_SMALL: f64 = 1e-12;
/// |u| standing for ±∞ in φ′(±∞).
const U_LARGE: f64 = 1e6;
/// The σ_w² range `critical_sigma_w2` scans (log-spaced).
pub const CRITICAL_RANGE: (f64, f64) = (1e-3, 1e4);

/// φ″(z), the second derivative, where the formulas need it (ξ_q).
///
/// ```text
/// identity, relu, leaky_relu   0                       (away from 0)
/// sigmoid                      σ(1 − σ)(1 − 2σ)
/// tanh                         −2 tanh z (1 − tanh² z)
/// elu, selu                    0 for z > 0, α e^z (times λ for selu) otherwise
/// gelu                         𝒩(z)(2 − z²)
/// silu                         σ′(z)(2 + z(1 − 2σ(z)))
/// softsign                     −2 sign(z) / (1 + |z|)³
/// softplus                     σ(z)(1 − σ(z)), 0 above the threshold 20
/// ```
/// The jumps of φ′ at 0 (relu, leaky_relu, selu) would add a Dirac term c·δ(z) to φ″; in
/// ∫φ″φ it is multiplied by φ(0) = 0, so it contributes nothing and is left out.
pub fn d2f(activation: Activation, z: f64) -> f64 {
    use Activation::*;
    match activation {
        Identity | Relu | LeakyRelu { .. } => 0.0,
        Sigmoid => {
            let s = sigmoid(z);
            s * (1.0 - s) * (1.0 - 2.0 * s)
        }
        Tanh => {
            let t = z.tanh();
            -2.0 * t * (1.0 - t * t)
        }
        Elu => {
            if z > 0.0 {
                0.0
            } else {
                z.exp()
            }
        }
        Selu => {
            if z > 0.0 {
                0.0
            } else {
                SELU_SCALE * SELU_ALPHA * z.exp()
            }
        }
        Gelu => quadrature::normal_pdf(z) * (2.0 - z * z),
        Silu => {
            let s = sigmoid(z);
            s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
        }
        Softsign => -2.0 * z.signum() / (1.0 + z.abs()).powi(3),
        Softplus => {
            if z > SOFTPLUS_THRESHOLD {
                0.0
            } else {
                let s = sigmoid(z);
                s * (1.0 - s)
            }
        }
    }
}

/// The points where φ, φ′ or φ″ jump: 0 (relu-like kinks; harmless for smooth φ) and
/// softplus's threshold.
pub fn kinks(activation: Activation) -> &'static [f64] {
    match activation {
        Activation::Softplus => &[0.0, SOFTPLUS_THRESHOLD],
        _ => &[0.0],
    }
}

/// Where the length map q^l goes from a starting q.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "q")]
pub enum QFixedPoint {
    /// A finite positive fixed point q*.
    Finite(f64),
    /// q^l → 0 (σ_b² = 0 and φ(0) = 0, in the ordered phase).
    Zero,
    /// q^l grows without bound (σ_b² > 0 with relu at σ_w² ≥ 2, or σ_w² above the critical
    /// value for an unbounded homogeneous φ).
    Unbounded,
}

/// Whether the correlation map converges exponentially (finite ξ_c) or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Convergence {
    /// |c^l − c*| ∝ e^(−l/ξ_c).
    Exponential,
    /// The slope at c* is 1: polynomial (or no) convergence, ξ_c = ∞.
    Polynomial,
}

/// The gradient phase, by χ₁.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// χ₁ < 1: gradients vanish.
    Ordered,
    /// χ₁ = 1 (within [`CRITICAL_TOL`]).
    Critical,
    /// χ₁ > 1: gradients explode.
    Chaotic,
}

/// Everything the theory says about one (φ, σ_w², σ_b²) at its fixed point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixedPointTheory {
    /// Where q^l goes from the first layer's q¹ = σ_w² q⁰ + σ_b².
    pub q_fixed_point: QFixedPoint,
    /// q* (null unless finite).
    pub q_star: Option<f64>,
    /// χ₁ = σ_w² ∫Dz φ′(√q* z)²: the per-layer factor of E‖∂L/∂z_l‖² (at the q → 0 or q → ∞
    /// limit when q^l has no finite fixed point).
    pub chi1: f64,
    /// The gradient phase.
    pub phase: Phase,
    /// χ₁ + σ_w² ∫Dz φ″(√q* z) φ(√q* z): the length map's slope at q*.
    pub chi_q: f64,
    /// ξ_q = −1/ln χ_q, in layers (null where q^l has no finite stable fixed point).
    pub xi_q: Option<f64>,
    /// The stable fixed point of the correlation map.
    pub c_star: f64,
    /// The correlation map's slope at c* (χ_c(c*), equal to χ₁ in the ordered phase).
    pub chi_c: f64,
    /// ξ_c = −1/ln χ_c(c*), in layers (null = infinite).
    pub xi_c: Option<f64>,
    /// How c^l approaches c*.
    pub correlation_convergence: Convergence,
    /// 6 ξ_c: the depth to which Schoenholz et al. 2017 found such networks trainable (null =
    /// no limit from the correlation length).
    pub trainable_depth: Option<f64>,
    /// 1/|ln χ₁|: layers over which E‖∂L/∂z_l‖² changes by a factor e (null at χ₁ = 1).
    pub gradient_depth_scale: Option<f64>,
}

/// The prediction for one linear layer of a depth-L network (engine numbering: hidden layers
/// 0..L−1, the linear output layer L).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerPrediction {
    /// 0-based index of the linear layer.
    pub layer: usize,
    /// q^l = E\[z_l²\], the pre-activations' second moment.
    pub q: f64,
    /// σ_w² ∫Dz φ′(√q^l z)² = E‖∂L/∂z_l‖² / E‖∂L/∂z_{l+1}‖² (null for the output layer).
    pub factor: Option<f64>,
    /// E‖∂L/∂z_l‖² / E‖∂L/∂z_L‖², the output layer's being 1.
    pub grad_z2: f64,
}

/// The mean-field description of an MLP: activation and weight/bias variances.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanField {
    /// φ.
    pub activation: Activation,
    /// σ_w²: W_ij ~ N(0, σ_w²/fan_in).
    pub sigma_w2: f64,
    /// σ_b²: b_i ~ N(0, σ_b²).
    pub sigma_b2: f64,
}

/// Checks that `value` is finite and positive (`positive`) or non-negative.
pub fn check(key: &str, value: f64, positive: bool) -> Result<()> {
    let ok = value.is_finite() && if positive { value > 0.0 } else { value >= 0.0 };
    if ok {
        Ok(())
    } else {
        let what = if positive { "a finite number > 0" } else { "a finite number ≥ 0" };
        Err(Error::invalid(key, value, format!("must be {what}")))
    }
}

impl MeanField {
    /// Checks σ_w² > 0 and σ_b² ≥ 0.
    pub fn new(activation: Activation, sigma_w2: f64, sigma_b2: f64) -> Result<Self> {
        check("sigma_w2", sigma_w2, true)?;
        check("sigma_b2", sigma_b2, false)?;
        Ok(Self { activation, sigma_w2, sigma_b2 })
    }

    /// ∫Dz g(√q z), cut at φ's kinks.
    pub fn gauss(&self, q: f64, g: impl Fn(f64) -> f64) -> f64 {
        let sq = q.sqrt();
        let cuts: Vec<f64> = kinks(self.activation).iter().map(|k| k / sq).collect();
        quadrature::expect(|z| g(sq * z), &cuts)
    }

    /// ∫Dz₁Dz₂ f(u₁) g(u₂) with u₁, u₂ of variance q and correlation c ∈ [−1, 1].
    pub fn gauss_pair(&self, q: f64, c: f64, f: impl Fn(f64) -> f64, g: impl Fn(f64) -> f64) -> f64 {
        let c = c.clamp(-1.0, 1.0);
        let sq = q.sqrt();
        let cuts: Vec<f64> = kinks(self.activation).iter().map(|k| k / sq).collect();
        let (a, s) = (sq * c, sq * (1.0 - c * c).sqrt());
        quadrature::expect_pair(|z| f(sq * z), &cuts, g, kinks(self.activation), a, s)
    }

    /// The first hidden layer's q¹ = σ_w² q⁰ + σ_b² for inputs with ‖x‖²/fan_in = q⁰.
    pub fn first_layer_q(&self, q0: f64) -> f64 {
        self.sigma_w2 * q0 + self.sigma_b2
    }

    /// The length map q ↦ σ_w² ∫Dz φ(√q z)² + σ_b².
    pub fn q_map(&self, q: f64) -> f64 {
        let a = self.activation;
        self.sigma_w2 * self.gauss(q, |u| a.f(u).powi(2)) + self.sigma_b2
    }

    /// σ_w² ∫Dz φ′(√q z)²: the factor by which E‖∂L/∂z‖² grows from a layer of second
    /// moment q to the one below it; χ₁ at q = q*.
    pub fn gradient_factor(&self, q: f64) -> f64 {
        let a = self.activation;
        self.sigma_w2 * self.gauss(q, |u| a.df(u).powi(2))
    }

    /// The length map's slope χ₁ + σ_w² ∫Dz φ″(√q z) φ(√q z) (Stein's lemma turns
    /// d/dq ∫Dz φ(√q z)² into ∫Dz [φ′² + φ φ″]).
    pub fn q_slope(&self, q: f64) -> f64 {
        let a = self.activation;
        self.gradient_factor(q) + self.sigma_w2 * self.gauss(q, |u| d2f(a, u) * a.f(u))
    }

    /// The correlation map: c ↦ (σ_w² ∫φ(u₁)φ(u₂) + σ_b²) / q_map(q), for two inputs of second
    /// moment q and correlation c.
    pub fn c_map(&self, q: f64, c: f64) -> f64 {
        let a = self.activation;
        let cross = self.sigma_w2 * self.gauss_pair(q, c, |u| a.f(u), |u| a.f(u)) + self.sigma_b2;
        cross / self.q_map(q)
    }

    /// The correlation map's slope ∂c^{l+1}/∂c^l = σ_w² q ∫φ′(u₁)φ′(u₂) / q_map(q) (Price's
    /// theorem); χ_c = σ_w² ∫φ′(u₁)φ′(u₂) at q = q*.
    pub fn c_slope(&self, q: f64, c: f64) -> f64 {
        let a = self.activation;
        let pair =
            if c >= 1.0 { self.gauss(q, |u| a.df(u).powi(2)) } else { self.gauss_pair(q, c, |u| a.df(u), |u| a.df(u)) };
        self.sigma_w2 * q * pair / self.q_map(q)
    }

    /// The q⁰ = (q* − σ_b²)/σ_w² that puts the first layer at the fixed point (q¹ = q*), for the
    /// q* reached from inputs with q⁰ = `q0_start`.
    pub fn fixed_point_input(&self, q0_start: f64) -> Result<f64> {
        match self.q_fixed_point(self.first_layer_q(q0_start)) {
            QFixedPoint::Finite(q) if q > self.sigma_b2 => Ok((q - self.sigma_b2) / self.sigma_w2),
            fp => Err(Error::invalid(
                "q0_fixed",
                "true",
                format!("needs a fixed point q* > σ_b², but q^l goes to {fp:?} here; give --q0 instead"),
            )),
        }
    }

    /// Where q^l goes from `q_start`: iterate the map, then, if it has not settled in 200
    /// layers, bracket the root of q_map(q) − q by doubling (halving) and refine with Brent.
    pub fn q_fixed_point(&self, q_start: f64) -> QFixedPoint {
        let h = |q: f64| self.q_map(q) - q;
        let mut q = q_start.max(Q_ZERO);
        for _ in 0..200 {
            let next = self.q_map(q);
            if (next - q).abs() <= 1e-14 * next.max(q) {
                return QFixedPoint::Finite(next);
            }
            if next > Q_INFINITE {
                return QFixedPoint::Unbounded;
            }
            if next < Q_ZERO {
                return QFixedPoint::Zero;
            }
            q = next;
        }
        if h(q) > 0.0 {
            let mut lo = q;
            let mut hi = 2.0 * q;
            while h(hi) > 0.0 {
                lo = hi;
                hi *= 2.0;
                if hi > Q_INFINITE {
                    return QFixedPoint::Unbounded;
                }
            }
            QFixedPoint::Finite(brent(h, lo, hi, 1e-15 * hi))
        } else {
            let mut hi = q;
            let mut lo = 0.5 * q;
            while h(lo) < 0.0 {
                hi = lo;
                lo *= 0.5;
                if lo < Q_ZERO {
                    return QFixedPoint::Zero;
                }
            }
            QFixedPoint::Finite(brent(h, lo, hi, 1e-15 * hi))
        }
    }

    /// χ₁ and χ_q where q^l ends up: at q*, or in the limit q^l tends to.
    ///
    /// q → 0: the integrals at q = 1e-12. q → ∞ (only unbounded φ get there, all of them
    /// asymptotically linear on each side): ∫Dz φ′(√q z)² → (φ′(∞)² + φ′(−∞)²)/2, and
    /// ∫φ″φ → 0, so χ_q → χ₁.
    pub fn chi1_chi_q(&self, fp: QFixedPoint) -> (f64, f64) {
        match fp {
            QFixedPoint::Finite(q) => (self.gradient_factor(q), self.q_slope(q)),
            QFixedPoint::Zero => (self.gradient_factor(Q_LIMIT_SMALL), self.q_slope(Q_LIMIT_SMALL)),
            QFixedPoint::Unbounded => {
                let a = self.activation;
                let chi1 = self.sigma_w2 * 0.5 * (a.df(U_LARGE).powi(2) + a.df(-U_LARGE).powi(2));
                (chi1, chi1)
            }
        }
    }

    /// q*, χ₁, ξ_q, c*, χ_c, ξ_c for inputs with ‖x‖²/fan_in = q⁰.
    ///
    /// Where q^l has no finite positive fixed point, the correlation map's slope at c = 1 tends
    /// to 1 (φ is linear near 0, or asymptotically linear on each side, so the normalised map
    /// stops depending on the scale): correlations converge polynomially.
    pub fn fixed_point(&self, q0: f64) -> FixedPointTheory {
        let q_fixed_point = self.q_fixed_point(self.first_layer_q(q0));
        let (chi1, chi_q) = self.chi1_chi_q(q_fixed_point);
        let phase = classify(chi1);
        // q^l → 0 has a rate too: q^l ∝ χ_q^l
        let xi_q = match q_fixed_point {
            QFixedPoint::Unbounded => None,
            _ => (chi_q > 0.0 && chi_q < 1.0).then(|| -1.0 / chi_q.ln()),
        };
        let (q_star, slope_at_1) = match q_fixed_point {
            QFixedPoint::Finite(q) => (Some(q), self.c_slope(q, 1.0)),
            _ => (None, 1.0),
        };
        let (c_star, chi_c) = if slope_at_1 < 1.0 - CRITICAL_TOL {
            (1.0, slope_at_1)
        } else if slope_at_1 > 1.0 + CRITICAL_TOL {
            self.correlation_fixed_point(
                q_star.expect("gradscope internal error: a slope above 1 needs a finite q*"),
                slope_at_1,
            )
        } else {
            (1.0, 1.0)
        };
        let (xi_c, correlation_convergence) = if (chi_c - 1.0).abs() <= CRITICAL_TOL {
            (None, Convergence::Polynomial)
        } else {
            (Some(-1.0 / chi_c.ln()), Convergence::Exponential)
        };
        FixedPointTheory {
            q_fixed_point,
            q_star,
            chi1,
            phase,
            chi_q,
            xi_q,
            c_star,
            chi_c,
            xi_c,
            correlation_convergence,
            trainable_depth: xi_c.map(|x| TRAINABLE_XI_C * x),
            gradient_depth_scale: (phase != Phase::Critical).then(|| 1.0 / chi1.ln().abs()),
        }
    }

    /// The stable fixed point c* < 1 of the correlation map at second moment q, and the map's
    /// slope there, when its slope at 1 is `slope_at_1` > 1.
    ///
    /// g(c) = c_map(c) − c is convex on [0, 1] with g(0) ≥ 0, g(1) = 0, g′(1) > 0: it is
    /// negative just below 1 and its other root is c*. Probe c = 1 − 2^(−k) for a negative
    /// value and refine with Brent. When c* is too close to 1 to resolve (|g| at the level of the
    /// integrals' rounding), use the quadratic expansion of g at 1, whose roots give
    /// slope(c*) ≈ 2 − slope(1).
    fn correlation_fixed_point(&self, q: f64, slope_at_1: f64) -> (f64, f64) {
        let g = |c: f64| self.c_map(q, c) - c;
        let mut lo = 0.0;
        if g(lo) <= 0.0 {
            return (0.0, self.c_slope(q, 0.0));
        }
        for k in 1..=40 {
            let c = 1.0 - 0.5f64.powi(k);
            let v = g(c);
            if v < -1e-13 {
                let c_star = brent(g, lo, c, 1e-13);
                return (c_star, self.c_slope(q, c_star));
            }
            if v > 0.0 {
                lo = c;
            }
        }
        (1.0, 2.0 - slope_at_1)
    }

    /// The layer-by-layer prediction for a network of `depth` hidden layers and a linear output
    /// layer, all drawn with this σ_w², σ_b², fed inputs with ‖x‖²/fan_in = q⁰: q^l, the
    /// per-layer factor σ_w² ∫Dz φ′(√q^l z)² and E‖∂L/∂z_l‖² relative to the output layer's.
    pub fn trajectory(&self, q0: f64, depth: usize) -> Vec<LayerPrediction> {
        let mut q = self.first_layer_q(q0);
        let mut layers = Vec::with_capacity(depth + 1);
        for layer in 0..=depth {
            let factor = (layer < depth).then(|| self.gradient_factor(q));
            layers.push(LayerPrediction { layer, q, factor, grad_z2: 1.0 });
            q = self.q_map(q);
        }
        for l in (0..depth).rev() {
            layers[l].grad_z2 = layers[l + 1].grad_z2 * layers[l].factor.expect("hidden layers have a factor");
        }
        layers
    }

    /// c^l for two inputs of second moment q⁰ and correlation c⁰, for layers 0..=depth
    /// (following q^l of [`MeanField::trajectory`]).
    pub fn correlation_trajectory(&self, q0: f64, c0: f64, depth: usize) -> Vec<f64> {
        let mut q = self.first_layer_q(q0);
        let mut c = (self.sigma_w2 * q0 * c0 + self.sigma_b2) / q;
        let mut out = Vec::with_capacity(depth + 1);
        for _ in 0..=depth {
            out.push(c);
            c = self.c_map(q, c);
            q = self.q_map(q);
        }
        out
    }
}

/// The gradient phase of a χ₁.
pub fn classify(chi1: f64) -> Phase {
    if chi1 < 1.0 - CRITICAL_TOL {
        Phase::Ordered
    } else if chi1 > 1.0 + CRITICAL_TOL {
        Phase::Chaotic
    } else {
        Phase::Critical
    }
}

/// Predicted E‖∂L/∂z_l‖² of every linear layer l = 0..=depth of a `depth`-hidden-layer MLP
/// (linear output layer last, equal to 1), relative to the output layer's, for inputs with
/// ‖x‖²/fan_in = q⁰ and weights drawn with this σ_w², σ_b² (use [`init_variances`] for other
/// inits).
///
/// For the report's gradient-flow figure: between hidden layers, ‖∂L/∂W_l‖ ≈ ‖∂L/∂z_l‖·‖h_{l−1}‖
/// for one example, and ‖h_{l−1}‖ settles as q^l does, so away from the input ‖∂L/∂W_l‖ falls
/// by √(factor) per layer, like √(E‖∂L/∂z_l‖²).
pub fn predicted_decay(
    activation: Activation,
    sigma_w2: f64,
    sigma_b2: f64,
    q0: f64,
    depth: usize,
) -> Result<Vec<f64>> {
    check("q0", q0, false)?;
    let mf = MeanField::new(activation, sigma_w2, sigma_b2)?;
    Ok(mf.trajectory(q0, depth).into_iter().map(|l| l.grad_z2).collect())
}

/// What [`critical_sigma_w2`] found.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "sigma_w2")]
pub enum Critical {
    /// χ₁ = 1 at this σ_w².
    At(f64),
    /// χ₁ jumps across 1 at this σ_w² without passing through it: the fixed point q* that
    /// q^l reaches from q¹ vanishes there (gelu and silu: a small q* for σ_w² below, q^l → ∞
    /// above).
    Jump(f64),
    /// χ₁ − 1 does not turn from negative to positive on [`CRITICAL_RANGE`].
    None,
}

/// The σ_w² with χ₁ = 1 at this σ_b²: the smallest σ_w² in [`CRITICAL_RANGE`] where χ₁ − 1
/// (χ₁ where q^l goes from q¹ = σ_w² q⁰ + σ_b²) turns from negative to positive, found on a
/// log-spaced scan of 121 points and refined with Brent's method to 1e-12 relative.
pub fn critical_sigma_w2(activation: Activation, sigma_b2: f64, q0: f64) -> Result<Critical> {
    check("sigma_b2", sigma_b2, false)?;
    check("q0", q0, false)?;
    let excess = |sigma_w2: f64| {
        let mf = MeanField { activation, sigma_w2, sigma_b2 };
        mf.chi1_chi_q(mf.q_fixed_point(mf.first_layer_q(q0))).0 - 1.0
    };
    let (lo, hi) = (CRITICAL_RANGE.0.ln(), CRITICAL_RANGE.1.ln());
    let n = 120;
    let grid = |i: usize| (lo + (hi - lo) * i as f64 / n as f64).exp();
    let mut prev = (grid(0), excess(grid(0)));
    for i in 1..=n {
        let s = grid(i);
        let v = excess(s);
        if prev.1 < 0.0 && v >= 0.0 {
            let root = brent(excess, prev.0, s, 1e-12 * s);
            return Ok(if excess(root).abs() <= 1e-6 { Critical::At(root) } else { Critical::Jump(root) });
        }
        prev = (s, v);
    }
    Ok(Critical::None)
}

/// The mean-field variances an initialisation amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct InitVariances {
    /// fan_in · Var(W_ij).
    pub sigma_w2: f64,
    /// Var(b_i).
    pub sigma_b2: f64,
}

/// σ_w² = fan_in·Var(W_ij) and σ_b² = Var(b_i) of a hidden layer drawn with `init` for
/// `activation` (`sigma_w2`, `sigma_b2` are the config's, used by `gaussian` and `orthogonal`).
///
/// Every gradscope init has one: the mean-field maps need only the weights' variance, because
/// the pre-activations of a wide layer are Gaussian by the central limit theorem whether the
/// weights are Gaussian or uniform (Poole et al. 2016, sec. 2). For `orthogonal` the length map
/// and χ₁ are those of σ_w² exactly (an orthogonal matrix preserves ‖h‖), but the Jacobian's
/// spectrum is not (Pennington et al. 2017).
///
/// ```text
/// pytorch          σ_w² = 1/3,                        σ_b² = 1/(3 fan_in)   (U(±1/√fan_in))
/// xavier_*         σ_w² = g²·2 fan_in/(fan_in+fan_out), σ_b² = 0
/// kaiming_*        σ_w² = g²,                          σ_b² = 0
/// lecun_normal     σ_w² = 1,                           σ_b² = 0
/// orthogonal       σ_w² = σ_w²·fan_in/max(fan_in, fan_out), σ_b² = σ_b²
/// gaussian         σ_w², σ_b² as configured
/// ```
pub fn init_variances(
    init: Init,
    activation: Activation,
    fan_in: usize,
    fan_out: usize,
    sigma_w2: f64,
    sigma_b2: f64,
) -> InitVariances {
    let g = crate::nn::init::gain(activation);
    let sigma_b2 = match init {
        Init::Pytorch => 1.0 / (3.0 * fan_in as f64),
        Init::Gaussian | Init::Orthogonal => sigma_b2,
        _ => 0.0,
    };
    InitVariances { sigma_w2: init.sigma_w2(fan_in, fan_out, g, sigma_w2), sigma_b2 }
}

/// A root of f in [a, b], where f(a) and f(b) do not have the same strict sign, by Brent's
/// method (R. P. Brent, "Algorithms for Minimization without Derivatives", 1973, ch. 4; the
/// `zbrent` form of Numerical Recipes, 3rd ed., sec. 9.3), to within `xtol`.
pub(crate) fn brent(mut f: impl FnMut(f64) -> f64, mut a: f64, mut b: f64, xtol: f64) -> f64 {
    let (mut fa, mut fb) = (f(a), f(b));
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    let (mut c, mut fc) = (b, fb);
    let (mut d, mut e) = (b - a, b - a);
    for _ in 0..300 {
        if (fb > 0.0) == (fc > 0.0) {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol = 2.0 * f64::EPSILON * b.abs() + 0.5 * xtol;
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return b;
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * m * s, 1.0 - s)
            } else {
                let (qa, r) = (fa / fc, fb / fc);
                (s * (2.0 * m * qa * (qa - r) - (b - a) * (r - 1.0)), (qa - 1.0) * (r - 1.0) * (s - 1.0))
            };
            if p > 0.0 {
                q = -q;
            }
            p = p.abs();
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = f(b);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Named;
    use crate::nn::ActivationKind;
    use clap::ValueEnum;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn all() -> Vec<Activation> {
        ActivationKind::value_variants().iter().map(|&k| Activation::new(k, 0.1)).collect()
    }

    fn mf(a: Activation, w: f64, b: f64) -> MeanField {
        MeanField::new(a, w, b).unwrap()
    }

    /// φ″ against central differences of the engine's φ′, away from the kinks.
    #[test]
    fn second_derivative_matches_finite_differences_of_df() {
        let h = 1e-5;
        for a in all() {
            for i in -80..=80 {
                let z = i as f64 * 0.1 + 0.013;
                let fd = (a.df(z + h) - a.df(z - h)) / (2.0 * h);
                let an = d2f(a, z);
                assert!((fd - an).abs() <= 1e-7 * (1.0 + an.abs()), "{} at {z}: fd {fd} vs {an}", a.name());
            }
        }
    }

    /// Known answers: ReLU with σ_w² = 2, σ_b² = 0 gives χ₁ = 1 at any q; linear φ gives χ₁ = σ_w².
    #[test]
    fn relu_he_is_critical_and_linear_chi_is_sigma_w2() {
        let t = mf(Activation::Relu, 2.0, 0.0).fixed_point(1.0);
        assert!((t.q_star.unwrap() - 2.0).abs() < 1e-12); // q¹ = 2·1, and every q is a fixed point
        assert!((t.chi1 - 1.0).abs() < 1e-12, "{}", t.chi1);
        assert_eq!(t.phase, Phase::Critical);
        assert_eq!(t.correlation_convergence, Convergence::Polynomial);
        assert_eq!(t.xi_c, None);
        for w in [0.3, 0.9, 1.7] {
            let t = mf(Activation::Identity, w, 0.2).fixed_point(1.0);
            assert!((t.chi1 - w).abs() < 1e-13, "σ_w² = {w}: χ₁ = {}", t.chi1);
        }
        // the linear length map: q* = σ_b²/(1 − σ_w²)
        let t = mf(Activation::Identity, 0.5, 0.2).fixed_point(1.0);
        assert!((t.q_star.unwrap() - 0.4).abs() < 1e-12);
        assert!((t.xi_c.unwrap() - (-1.0 / 0.5f64.ln())).abs() < 1e-9);
    }

    /// Known answer: tanh with σ_b² = 0 is critical at σ_w² = 1 (Poole et al. 2016, fig. 1).
    #[test]
    fn tanh_without_bias_is_critical_at_one() {
        let Critical::At(s) = critical_sigma_w2(Activation::Tanh, 0.0, 1.0).unwrap() else { panic!() };
        assert!((s - 1.0).abs() < 1e-6, "critical σ_w² = {s}");
        let t = mf(Activation::Tanh, 0.8, 0.0).fixed_point(1.0);
        assert_eq!(t.q_fixed_point, QFixedPoint::Zero);
        assert!((t.chi1 - 0.8).abs() < 1e-9);
    }

    /// At the critical σ_w² of any σ_b² > 0, χ₁ = 1 and ξ_c diverges; either side of it the
    /// phases are ordered and chaotic.
    #[test]
    fn critical_search_lands_on_chi1_equal_one() {
        let Critical::At(s) = critical_sigma_w2(Activation::Tanh, 0.05, 1.0).unwrap() else { panic!() };
        assert!((s - 1.761).abs() < 5e-4, "the README's critical σ_w² at σ_b² = 0.05: {s}");
        for b in [0.05, 0.3] {
            let Critical::At(s) = critical_sigma_w2(Activation::Tanh, b, 1.0).unwrap() else { panic!() };
            let t = mf(Activation::Tanh, s, b).fixed_point(1.0);
            assert!((t.chi1 - 1.0).abs() < 1e-9, "σ_b² = {b}: χ₁ = {}", t.chi1);
            assert_eq!(t.xi_c, None);
            assert_eq!(mf(Activation::Tanh, 0.9 * s, b).fixed_point(1.0).phase, Phase::Ordered);
            assert_eq!(mf(Activation::Tanh, 1.1 * s, b).fixed_point(1.0).phase, Phase::Chaotic);
        }
        // relu: χ₁ = σ_w²/2 whatever q, so σ_w² = 2 (q^l then grows without bound when σ_b² > 0)
        let Critical::At(s) = critical_sigma_w2(Activation::Relu, 0.1, 1.0).unwrap() else { panic!() };
        assert!((s - 2.0).abs() < 1e-9, "{s}");
        // identity: χ₁ = σ_w²
        let Critical::At(s) = critical_sigma_w2(Activation::Identity, 0.1, 1.0).unwrap() else { panic!() };
        assert!((s - 1.0).abs() < 1e-9, "{s}");
        // sigmoid: critical only where q* is large and the units saturate (σ′ ≤ 1/4 needs
        // σ_w² ≈ 100); gelu: the small q* vanishes before χ₁ reaches 1, and χ₁ jumps
        let Critical::At(s) = critical_sigma_w2(Activation::Sigmoid, 0.0, 1.0).unwrap() else { panic!() };
        let t = mf(Activation::Sigmoid, s, 0.0).fixed_point(1.0);
        assert!((s - 103.0).abs() < 0.5 && (t.q_star.unwrap() - 46.0).abs() < 1.0, "{s} {t:?}");
        assert!((t.chi1 - 1.0).abs() < 1e-9);
        let Critical::Jump(s) = critical_sigma_w2(Activation::Gelu, 0.05, 1.0).unwrap() else { panic!() };
        assert!((s - 2.105).abs() < 1e-3, "{s}");
        let (below, above) = (mf(Activation::Gelu, 0.999 * s, 0.05), mf(Activation::Gelu, 1.001 * s, 0.05));
        assert!(below.fixed_point(1.0).chi1 < 0.7 && (above.fixed_point(1.0).chi1 - 1.05).abs() < 0.01);
        assert_eq!(above.fixed_point(1.0).q_fixed_point, QFixedPoint::Unbounded);
        // far outside the scanned range: none
        assert_eq!(critical_sigma_w2(Activation::Sigmoid, 1e7, 1.0).unwrap(), Critical::None);
    }

    /// χ_q, the slope of the length map, computed with φ″ equals the length map's derivative.
    #[test]
    fn q_slope_is_the_derivative_of_the_q_map() {
        for a in all() {
            let m = mf(a, 1.6, 0.1);
            for q in [0.3, 1.0, 4.0] {
                let h = 1e-5 * q;
                let fd = (m.q_map(q + h) - m.q_map(q - h)) / (2.0 * h);
                let an = m.q_slope(q);
                assert!((fd - an).abs() < 1e-7 * (1.0 + an.abs()), "{} q={q}: fd {fd} vs {an}", a.name());
            }
        }
    }

    /// The correlation map's slope (Price's theorem) equals its derivative in c, and its value at
    /// c = 1 is 1.
    #[test]
    fn c_slope_is_the_derivative_of_the_c_map() {
        for a in [Activation::Tanh, Activation::Relu, Activation::Selu, Activation::Sigmoid] {
            let m = mf(a, 1.8, 0.05);
            let q = 0.7;
            for c in [0.1, 0.5, 0.9] {
                let h = 1e-5;
                let fd = (m.c_map(q, c + h) - m.c_map(q, c - h)) / (2.0 * h);
                let an = m.c_slope(q, c);
                assert!((fd - an).abs() < 1e-6, "{} c={c}: fd {fd} vs {an}", a.name());
            }
            assert!((m.c_map(q, 1.0) - 1.0).abs() < 1e-12);
        }
    }

    /// In the chaotic phase c* < 1 is a fixed point of the correlation map, the slope there is
    /// below 1 and ξ_c comes from it, not from χ₁; in the ordered phase ξ_c = −1/ln χ₁.
    #[test]
    fn xi_c_follows_the_papers_in_both_phases() {
        let m = mf(Activation::Tanh, 2.5, 0.05);
        let t = m.fixed_point(1.0);
        assert_eq!(t.phase, Phase::Chaotic);
        let q = t.q_star.unwrap();
        assert!(t.c_star < 1.0 && t.c_star > 0.0);
        assert!((m.c_map(q, t.c_star) - t.c_star).abs() < 1e-11);
        assert!(t.chi_c < 1.0);
        assert!((t.xi_c.unwrap() + 1.0 / t.chi_c.ln()).abs() < 1e-12);
        assert!((t.xi_c.unwrap() + 1.0 / t.chi1.ln()).abs() > 0.1, "chaotic ξ_c must not come from χ₁");
        // iterating the map from c = 0.2 approaches c* at the rate χ_c(c*)
        let mut c = 0.2;
        let mut gaps = Vec::new();
        for _ in 0..12 {
            c = m.c_map(q, c);
            gaps.push((c - t.c_star).abs());
        }
        let rate = gaps[11] / gaps[10];
        assert!((rate / t.chi_c - 1.0).abs() < 1e-2, "rate {rate} vs χ_c {}", t.chi_c);

        let t = mf(Activation::Tanh, 1.0, 0.05).fixed_point(1.0);
        assert_eq!(t.phase, Phase::Ordered);
        assert_eq!(t.c_star, 1.0);
        assert!((t.xi_c.unwrap() + 1.0 / t.chi1.ln()).abs() < 1e-6);
        assert!((t.trainable_depth.unwrap() - 6.0 * t.xi_c.unwrap()).abs() < 1e-12);
    }

    /// ξ_q: q^l approaches q* at the rate χ_q.
    #[test]
    fn q_approaches_its_fixed_point_at_rate_chi_q() {
        let m = mf(Activation::Tanh, 1.5, 0.05);
        let t = m.fixed_point(1.0);
        let q_star = t.q_star.unwrap();
        let traj = m.trajectory(1.0, 20);
        let gaps: Vec<f64> = traj.iter().map(|l| (l.q - q_star).abs()).collect();
        let at_fixed_point = m.trajectory(m.fixed_point_input(1.0).unwrap(), 3);
        assert!(at_fixed_point.iter().all(|l| (l.q - q_star).abs() < 1e-12));
        assert!(mf(Activation::Relu, 1.5, 0.0).fixed_point_input(1.0).unwrap_err().to_string().contains("Zero"));
        let rate = gaps[20] / gaps[19];
        assert!((rate / t.chi_q - 1.0).abs() < 1e-3, "rate {rate} vs χ_q {}", t.chi_q);
        assert!((t.xi_q.unwrap() + 1.0 / t.chi_q.ln()).abs() < 1e-12);
    }

    /// ReLU's correlations converge polynomially, 1 − c^l ≈ 9π²/(2l²) (Hayou et al. 2019): the
    /// reason ξ_c is infinite rather than a number.
    #[test]
    fn relu_correlations_converge_polynomially() {
        let m = mf(Activation::Relu, 2.0, 0.0);
        let t = m.fixed_point(1.0);
        assert_eq!(t.correlation_convergence, Convergence::Polynomial);
        // the quadrature's map is the arc-cosine map (Cho & Saul 2009) …
        let pi = std::f64::consts::PI;
        let arccos_map = |c: f64| ((1.0 - c * c).sqrt() + (pi - c.acos()) * c) / pi;
        let c = m.correlation_trajectory(1.0, 0.0, 300);
        for l in [1, 10, 100, 299] {
            assert!((c[l + 1] - arccos_map(c[l])).abs() < 1e-12, "layer {l}");
        }
        // … whose gap 1 − c^l falls like l^(−2): the local exponent d ln(1 − c)/d ln l nears −2
        let exponent = ((1.0 - c[300]) / (1.0 - c[150])).ln() / 2f64.ln();
        assert!((-2.1..-1.8).contains(&exponent), "exponent {exponent}");
        // and l²(1 − c^l) → 9π²/2, followed with the closed form to 10⁴ layers (0.996 there;
        // further out f64 cannot hold the steps of c)
        let mut c = 0.0;
        for _ in 0..10_000 {
            c = arccos_map(c);
        }
        let scaled = (1.0 - c) * 1e8 / (4.5 * pi * pi);
        assert!((scaled - 1.0).abs() < 0.01, "l²(1 − c)/(9π²/2) = {scaled}");
    }

    /// The trajectory's factors tend to χ₁ and its relative gradients multiply them.
    #[test]
    fn trajectory_follows_q_and_multiplies_factors() {
        let m = mf(Activation::Tanh, 1.5, 0.05);
        let t = m.fixed_point(5.0);
        let traj = m.trajectory(5.0, 30);
        assert!((traj[0].q - (1.5 * 5.0 + 0.05)).abs() < 1e-12);
        assert!((traj[1].q - m.q_map(traj[0].q)).abs() < 1e-12);
        assert!((traj[29].factor.unwrap() / t.chi1 - 1.0).abs() < 1e-6);
        assert!((traj[0].factor.unwrap() / t.chi1 - 1.0).abs() > 0.05, "q⁰ = 5 should start far from q*");
        assert_eq!(traj[30].grad_z2, 1.0);
        let product: f64 = traj.iter().filter_map(|l| l.factor).product();
        assert!((traj[0].grad_z2 / product - 1.0).abs() < 1e-12);
        let decay = predicted_decay(Activation::Tanh, 1.5, 0.05, 5.0, 30).unwrap();
        assert_eq!(decay, traj.iter().map(|l| l.grad_z2).collect::<Vec<_>>());
        assert!(predicted_decay(Activation::Tanh, 0.0, 0.05, 1.0, 3).unwrap_err().to_string().contains("sigma_w2 = 0"));
        assert!(
            predicted_decay(Activation::Tanh, 1.0, -0.1, 1.0, 3).unwrap_err().to_string().contains("sigma_b2 = -0.1")
        );
    }

    /// init_variances agrees with the variances of the weights and biases the engine draws.
    #[test]
    fn init_variances_match_drawn_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (fi, fo) = (300, 200);
        for act in [Activation::Tanh, Activation::Relu] {
            for &init in Init::value_variants() {
                let v = init_variances(init, act, fi, fo, 1.7, 0.3);
                let g = crate::nn::init::gain(act);
                let (w, b) = init.draw(&mut rng, fi, fo, g, 1.7, 0.3);
                let var_w = w.mapv(|x| x * x).mean().unwrap() * fi as f64;
                assert!(
                    (var_w / v.sigma_w2 - 1.0).abs() < 0.03,
                    "{} {}: {var_w} vs {}",
                    init.name(),
                    act.name(),
                    v.sigma_w2
                );
                let var_b = b.mapv(|x| x * x).mean().unwrap();
                assert!(
                    (var_b - v.sigma_b2).abs() <= 0.4 * v.sigma_b2 + 1e-15,
                    "{}: {var_b} vs {}",
                    init.name(),
                    v.sigma_b2
                );
            }
        }
    }

    /// The demo's sigmoid network with PyTorch's init (width 64): σ_w² = 1/3, σ_b² = 1/192,
    /// χ₁ = 0.020, so ‖∂L/∂z‖ shrinks by √χ₁ ≈ 0.141 per layer (the README's "about 0.14"), and
    /// 6ξ_c = 1.5 layers.
    #[test]
    fn pytorch_sigmoid_loses_a_factor_seven_per_layer() {
        let v = init_variances(Init::Pytorch, Activation::Sigmoid, 64, 64, 1.0, 0.0);
        assert!((v.sigma_w2 - 1.0 / 3.0).abs() < 1e-15 && (v.sigma_b2 - 1.0 / 192.0).abs() < 1e-15);
        let t = mf(Activation::Sigmoid, v.sigma_w2, v.sigma_b2).fixed_point(1.0);
        assert!((t.chi1.sqrt() - 0.141).abs() < 5e-4, "√χ₁ = {}", t.chi1.sqrt());
        assert!((t.trainable_depth.unwrap() - 1.5).abs() < 0.05, "{:?}", t.trainable_depth);
    }

    #[test]
    fn brent_finds_roots() {
        let r = brent(|x| x * x - 2.0, 0.0, 2.0, 1e-14);
        assert!((r - 2f64.sqrt()).abs() < 1e-13);
        let r = brent(|x: f64| x.cos() - x, 0.0, 1.0, 1e-14);
        assert!((r.cos() - r).abs() < 1e-13);
    }
}
