//! Gaussian integrals ∫Dz f(z) and ∫Dz₁Dz₂ f(z₁, z₂), with Dz = e^(−z²/2)/√(2π) dz, to about
//! 1e-12 relative (1e-10 for double integrals), for integrands that are smooth except at a few known kinks.
//!
//! ```text
//! ∫Dz f(z) ≈ Σ_pieces ∫_a^b f(z) 𝒩(z) dz,   pieces = [−Z, Z] cut at the kinks, Z = 12
//! ```
//!
//! Each piece is integrated by adaptive bisection with a 20-point Gauss–Legendre rule: a panel
//! is accepted when the rule on it and the sum of the rule on its two halves agree to within the
//! panel's share of the tolerance. Like any adaptive rule it can miss a feature much narrower
//! than the node spacing that neither rule sees; the mean-field integrands have theirs at
//! u = √q z = 0 (φ's kink or its steepest part, narrow in z when q is large), which is always a
//! cut. The tails beyond |z| = 12 weigh 𝒩(12) ≈ 5e-32 and are left
//! out.
//!
//! Why not Gauss–Hermite alone: it converges fast only for integrands smooth on the whole line,
//! and φ′ of relu, leaky_relu and selu jumps at 0 (relu's φ′² is the step \[z > 0\]); even for
//! tanh the poles at ±iπ/2 slow it (tanh(1.3z + 0.2)²: 60 points leave a 7e-7 relative error,
//! 200 points are needed for 1e-11). [`GaussRule::hermite`] is kept as an independent check on
//! smooth integrands; the tests show both agree there, and that Gauss–Hermite misses a jump
//! that the cut rule integrates exactly.
//!
//! Nodes and weights come from the Golub–Welsch algorithm (G. H. Golub and J. H. Welsch,
//! "Calculation of Gauss quadrature rules", Math. Comp. 23, 1969): the nodes of the n-point
//! rule for a weight with three-term recurrence p_{k+1} = (x − α_k) p_k − β_k p_{k−1} are the
//! eigenvalues of the symmetric tridiagonal Jacobi matrix with diagonal α_k and off-diagonal
//! √β_k, and the weights are μ₀·v₁², v₁ the first component of each unit eigenvector,
//! μ₀ = ∫ weight. faer's self-adjoint eigensolver does the work.
//!
//! Double integrals with u₂ = a·z₁ + s·z₂ (a correlated pair) are iterated: the inner
//! integral over z₂ is cut where u₂ crosses a kink, which moves with z₁.

use faer::{Mat, Side};
use std::sync::OnceLock;

/// Integrals run over |z| ≤ Z_MAX.
pub const Z_MAX: f64 = 12.0;
/// Relative tolerance of the adaptive rule (of the integral of |f|𝒩 over a piece).
pub const RTOL: f64 = 1e-13;
/// Relative tolerance of the outer integral of [`expect_pair`].
pub const RTOL_PAIR: f64 = 1e-10;
/// Splits after which an adaptive integral accepts what it has.
const MAX_SPLITS: usize = 1000;
/// Points of the Gauss–Legendre panel rule.
const PANEL_POINTS: usize = 20;
/// Initial panel width in z: a 20-point rule integrates 𝒩 times a function analytic well beyond
/// such a panel to machine precision, so most panels are accepted at the first check.
const PANEL_WIDTH: f64 = 3.0;
/// Panels narrower than this are accepted as they are (a discontinuity the caller did not cut at).
const MIN_WIDTH: f64 = 1e-9;
/// 1/√(2π).
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// A Gauss quadrature rule: Σ weights\[i\]·f(nodes\[i\]).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussRule {
    /// The nodes, increasing.
    pub nodes: Vec<f64>,
    /// The weights, positive.
    pub weights: Vec<f64>,
}

impl GaussRule {
    /// The n-point rule of a weight whose monic orthogonal polynomials satisfy
    /// p_{k+1} = (x − alpha(k)) p_k − beta(k) p_{k−1}, with mu0 the weight's integral
    /// (Golub–Welsch).
    ///
    /// **Panics** if n = 0 or the eigensolver fails (a bug: the matrix is symmetric and finite).
    pub fn golub_welsch(n: usize, alpha: impl Fn(usize) -> f64, beta: impl Fn(usize) -> f64, mu0: f64) -> Self {
        assert!(n > 0, "gradscope internal error: a quadrature rule needs at least one node");
        let jacobi = Mat::<f64>::from_fn(n, n, |i, j| {
            if i == j {
                alpha(i)
            } else if i == j + 1 || j == i + 1 {
                beta(i.max(j)).sqrt()
            } else {
                0.0
            }
        });
        let eig = jacobi
            .self_adjoint_eigen(Side::Lower)
            .expect("gradscope internal error: the Jacobi matrix is symmetric and finite");
        let (values, vectors) = (eig.S().column_vector(), eig.U());
        let nodes = (0..n).map(|i| values[i]).collect();
        let weights = (0..n).map(|i| mu0 * vectors[(0, i)] * vectors[(0, i)]).collect();
        Self { nodes, weights }
    }

    /// Gauss–Legendre on [−1, 1]: α_k = 0, β_k = k²/(4k² − 1), μ₀ = 2.
    pub fn legendre(n: usize) -> Self {
        Self::golub_welsch(
            n,
            |_| 0.0,
            |k| {
                let k = k as f64;
                k * k / (4.0 * k * k - 1.0)
            },
            2.0,
        )
    }

    /// Gauss–Hermite for the standard normal density (probabilists' Hermite polynomials
    /// He_{k+1} = x He_k − k He_{k−1}): Σ wᵢ f(xᵢ) ≈ ∫Dz f(z), exact for polynomials of degree
    /// below 2n.
    pub fn hermite(n: usize) -> Self {
        Self::golub_welsch(n, |_| 0.0, |k| k as f64, 1.0)
    }

    /// Σ wᵢ f(xᵢ).
    pub fn apply(&self, mut f: impl FnMut(f64) -> f64) -> f64 {
        self.nodes.iter().zip(&self.weights).map(|(&x, &w)| w * f(x)).sum()
    }
}

fn panel_rule() -> &'static GaussRule {
    static RULE: OnceLock<GaussRule> = OnceLock::new();
    RULE.get_or_init(|| GaussRule::legendre(PANEL_POINTS))
}

/// The standard normal density 𝒩(z).
#[inline]
pub fn normal_pdf(z: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * z * z).exp()
}

/// ∫_a^b g with the panel rule, and ∫_a^b |g|.
fn panel(g: &mut impl FnMut(f64) -> f64, a: f64, b: f64) -> (f64, f64) {
    let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
    let rule = panel_rule();
    let (mut sum, mut abs) = (0.0, 0.0);
    for (&x, &w) in rule.nodes.iter().zip(&rule.weights) {
        let v = g(mid + half * x);
        sum += w * v;
        abs += w * v.abs();
    }
    (half * sum, half * abs)
}

/// ∫_a^b g by adaptive bisection, to `rtol` times the larger of `floor` and ∫|g| as first
/// estimated from the initial panels. After `MAX_SPLITS` splits the remaining panels are
/// accepted as they are: a guard against integrands noisier than the tolerance, which would
/// otherwise be bisected down to `MIN_WIDTH` everywhere.
fn adaptive(g: &mut impl FnMut(f64) -> f64, a: f64, b: f64, rtol: f64, floor: f64) -> f64 {
    if b <= a {
        return 0.0;
    }
    let n0 = ((b - a) / PANEL_WIDTH).ceil().max(1.0) as usize;
    let width = (b - a) / n0 as f64;
    let mut stack: Vec<(f64, f64, f64)> = Vec::with_capacity(64);
    let mut scale = 0.0;
    for i in 0..n0 {
        let (lo, hi) = (a + i as f64 * width, if i + 1 == n0 { b } else { a + (i + 1) as f64 * width });
        let (v, abs) = panel(g, lo, hi);
        scale += abs;
        stack.push((lo, hi, v));
    }
    let tol = rtol * scale.max(floor).max(f64::MIN_POSITIVE);
    let total = b - a;
    let mut result = 0.0;
    let mut splits = 0;
    while let Some((lo, hi, whole)) = stack.pop() {
        let mid = 0.5 * (lo + hi);
        let (left, _) = panel(g, lo, mid);
        let (right, _) = panel(g, mid, hi);
        let converged = (whole - (left + right)).abs() <= tol * (hi - lo) / total;
        if converged || hi - lo < MIN_WIDTH || splits >= MAX_SPLITS {
            result += left + right;
        } else {
            splits += 1;
            stack.push((lo, mid, left));
            stack.push((mid, hi, right));
        }
    }
    result
}

/// ∫Dz f(z) to about `RTOL`, cutting the line at `kinks` (points in z where f or a derivative
/// jumps; those outside [−Z_MAX, Z_MAX] are ignored).
pub fn expect(f: impl FnMut(f64) -> f64, kinks: &[f64]) -> f64 {
    expect_to(f, kinks, RTOL, 0.0)
}

/// ∫Dz f(z) to `rtol` times the larger of ∫|f|Dz and `floor`.
fn expect_to(mut f: impl FnMut(f64) -> f64, kinks: &[f64], rtol: f64, floor: f64) -> f64 {
    let mut cuts: Vec<f64> = kinks.iter().copied().filter(|k| k.abs() < Z_MAX).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut g = |z: f64| f(z) * normal_pdf(z);
    let mut total = 0.0;
    let mut lo = -Z_MAX;
    for &cut in cuts.iter().chain(std::iter::once(&Z_MAX)) {
        total += adaptive(&mut g, lo, cut, rtol, floor);
        lo = cut;
    }
    total
}

/// E[f(z₁)·g(a·z₁ + s·z₂)] over independent standard normal z₁, z₂ (s ≥ 0), to about
/// `RTOL_PAIR`, cutting z₁ at `f_kinks` and, for each z₁, z₂ where a·z₁ + s·z₂ crosses one of
/// `g_kinks` (points in u₂).
///
/// With a = √q·c, s = √q·√(1 − c²) the pair (√q z₁, a z₁ + s z₂) has variance q and
/// correlation c: the double integrals of the mean-field correlation map. The inner integrals
/// run to `RTOL` of ∫|g(s z₂)|Dz₂, their size at z₁ = 0, even where they are much smaller (far
/// out in z₁): there g is computed with an absolute, not a relative, rounding error (tanh′ =
/// 1 − tanh² near 1e-8 carries 1e-16), so a relative target cannot be met and need not be. The
/// outer integral runs to the looser `RTOL_PAIR`, above the inner integrals' noise.
pub fn expect_pair(
    f: impl Fn(f64) -> f64,
    f_kinks: &[f64],
    g: impl Fn(f64) -> f64,
    g_kinks: &[f64],
    a: f64,
    s: f64,
) -> f64 {
    let cuts = |m: f64| -> Vec<f64> { g_kinks.iter().map(|&k| (k - m) / s).collect() };
    let floor = if s == 0.0 { 0.0 } else { expect_to(|z2| g(s * z2).abs(), &cuts(0.0), RTOL, 0.0) };
    let inner = |z1: f64| -> f64 {
        let m = a * z1;
        if s == 0.0 {
            return g(m);
        }
        expect_to(|z2| g(m + s * z2), &cuts(m), RTOL, floor)
    };
    expect_to(|z1| f(z1) * inner(z1), f_kinks, RTOL_PAIR, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-300)
    }

    #[test]
    fn golub_welsch_rules_are_exact_on_polynomials() {
        // Gauss–Legendre with n points integrates x^k exactly for k < 2n: ∫_{-1}^{1} x^k = 2/(k+1), k even.
        let gl = GaussRule::legendre(PANEL_POINTS);
        for k in 0..2 * PANEL_POINTS {
            let want = if k % 2 == 0 { 2.0 / (k as f64 + 1.0) } else { 0.0 };
            let got = gl.apply(|x| x.powi(k as i32));
            assert!((got - want).abs() < 1e-14, "x^{k}: {got} vs {want}");
        }
        // Gauss–Hermite: E z^k = (k − 1)!! for even k.
        let gh = GaussRule::hermite(30);
        let mut double_factorial = 1.0;
        for k in (0..24).step_by(2) {
            if k > 0 {
                double_factorial *= (k - 1) as f64;
            }
            let got = gh.apply(|x| x.powi(k));
            assert!(rel(got, double_factorial) < 1e-12, "E z^{k}: {got} vs {double_factorial}");
        }
        assert!(gh.nodes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn expect_matches_closed_forms() {
        // E cos(bz) = e^(−b²/2), E e^(bz) = e^(b²/2), E z⁴ = 3, E|z| = √(2/π), P(z > 0.3) = Φ(−0.3).
        for b in [0.1, 1.0, 3.0] {
            assert!(rel(expect(|z| (b * z).cos(), &[]), (-0.5 * b * b).exp()) < 1e-11, "cos {b}");
            assert!(rel(expect(|z| (b * z).exp(), &[]), (0.5 * b * b).exp()) < 1e-11, "exp {b}");
        }
        // E cos(7z) = 2.3e-11 cancels: accurate to RTOL of ∫|cos 7z|Dz, not relative to itself
        assert!((expect(|z| (7.0 * z).cos(), &[]) - (-24.5f64).exp()).abs() < 1e-13);
        assert!(rel(expect(|z| z.powi(4), &[]), 3.0) < 1e-13);
        assert!(rel(expect(f64::abs, &[0.0]), (2.0 / std::f64::consts::PI).sqrt()) < 1e-13);
        let tail = 0.5 * libm::erfc(0.3 / std::f64::consts::SQRT_2);
        assert!(rel(expect(|z| if z > 0.3 { 1.0 } else { 0.0 }, &[0.3]), tail) < 1e-13);
        // A steep bump away from the cuts (narrower than the nodes' spacing in a 3-wide panel):
        // adaptivity has to find it. ∫ e^{−(z−1)²/(2w²)} 𝒩(z) dz = w/√(1+w²) · e^{−1/(2(1+w²))}.
        let w = 0.05;
        let got = expect(|z| (-(z - 1.0) * (z - 1.0) / (2.0 * w * w)).exp(), &[]);
        let want = w / (1.0 + w * w).sqrt() * (-0.5 / (1.0 + w * w)).exp();
        assert!(rel(got, want) < 1e-12, "{got} vs {want}");
    }

    /// Gauss–Hermite agrees with the cut adaptive rule on a smooth integrand once it has enough
    /// points (tanh's poles at ±iπ/2 slow it: 60 points leave 7e-7), but not on a jump: the
    /// reason `expect` cuts at kinks.
    #[test]
    fn gauss_hermite_agrees_on_smooth_integrands_and_misses_jumps() {
        let smooth = |z: f64| (1.3 * z + 0.2).tanh().powi(2);
        let adaptive = expect(smooth, &[]);
        assert!(rel(GaussRule::hermite(200).apply(smooth), adaptive) < 1e-11);
        assert!(rel(GaussRule::hermite(60).apply(smooth), adaptive) > 1e-7);
        let gh = GaussRule::hermite(200);
        let step = |z: f64| if z > 0.3 { 1.0 } else { 0.0 };
        let exact = 0.5 * libm::erfc(0.3 / std::f64::consts::SQRT_2);
        assert!(rel(expect(step, &[0.3]), exact) < 1e-13);
        assert!(rel(gh.apply(step), exact) > 1e-4, "Gauss–Hermite happened to hit the step");
    }

    #[test]
    fn pair_expectations_match_closed_forms() {
        // E[u₁u₂] = q·c; E[relu(u₁)relu(u₂)] and E[[u₁>0][u₂>0]] (arc-cosine kernels,
        // Cho & Saul 2009): q/(2π)(√(1−c²) + (π − arccos c)c) and (π − arccos c)/(2π).
        let pi = std::f64::consts::PI;
        for (q, c) in [(1.0f64, 0.3f64), (2.5, -0.7), (0.2, 0.999), (1.0, 0.0)] {
            let (a, s) = (q.sqrt() * c, q.sqrt() * (1.0 - c * c).sqrt());
            let sq = q.sqrt();
            let lin = expect_pair(|z| sq * z, &[], |u| u, &[], a, s);
            assert!((lin - q * c).abs() < 1e-12 * q, "linear q={q} c={c}: {lin}");
            let relu = |u: f64| u.max(0.0);
            let got = expect_pair(|z| relu(sq * z), &[0.0], relu, &[0.0], a, s);
            let want = q / (2.0 * pi) * ((1.0 - c * c).sqrt() + (pi - c.acos()) * c);
            assert!(rel(got, want) < 1e-11, "relu q={q} c={c}: {got} vs {want}");
            let step = |u: f64| if u > 0.0 { 1.0 } else { 0.0 };
            let got = expect_pair(|z| step(sq * z), &[0.0], step, &[0.0], a, s);
            let want = (pi - c.acos()) / (2.0 * pi);
            assert!(rel(got, want) < 1e-11, "step q={q} c={c}: {got} vs {want}");
        }
    }

    /// Quadrature against Monte Carlo (ChaCha8, 10⁶ draws): within 5 standard errors.
    #[test]
    fn quadrature_agrees_with_monte_carlo() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 1_000_000;
        let (q, c): (f64, f64) = (1.7, 0.6);
        let (a, s) = (q.sqrt() * c, q.sqrt() * (1.0 - c * c).sqrt());
        let f = |u: f64| (u + 0.3).tanh();
        let (mut m1, mut s1, mut m2, mut s2) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let z1: f64 = StandardNormal.sample(&mut rng);
            let z2: f64 = StandardNormal.sample(&mut rng);
            let v1 = f(q.sqrt() * z1).powi(2);
            let v2 = f(q.sqrt() * z1) * f(a * z1 + s * z2);
            m1 += v1;
            s1 += v1 * v1;
            m2 += v2;
            s2 += v2 * v2;
        }
        let nf = n as f64;
        for (sum, sq, quad, what) in [
            (m1, s1, expect(|z| f(q.sqrt() * z).powi(2), &[]), "E φ²"),
            (m2, s2, expect_pair(|z| f(q.sqrt() * z), &[], f, &[], a, s), "E φφ"),
        ] {
            let mean = sum / nf;
            let se = ((sq / nf - mean * mean) / nf).sqrt();
            assert!((mean - quad).abs() < 5.0 * se, "{what}: MC {mean} ± {se} vs quadrature {quad}");
        }
    }
}
