//! The input–output Jacobian at initialisation and its singular values (Pennington, Schoenholz
//! & Ganguli 2017, "Resurrecting the sigmoid in deep learning through dynamical isometry").
//!
//! ```text
//! J = ∂h_{L−1}/∂x = D_{L−1} W_{L−1} ⋯ D_0 W_0,    D_l = diag φ′(z_l)      (Pennington et al., eq. 2)
//! (1/n) Σ s_i² = ‖J‖²_F / n  →  Π_l σ_w² ∫Dz φ′(√q^l z)²  ≈ χ₁^L       (Pennington et al., eq. 7)
//! ```
//!
//! over the `depth` hidden layers, input to last hidden layer, for square layers of width n. The
//! mean squared singular value follows χ₁ for Gaussian and orthogonal weights alike; the spread
//! does not. With orthogonal weights and tanh at criticality with a small q* the singular values
//! stay near 1 at any depth (dynamical isometry); Gaussian weights, or relu's 0/1 derivatives,
//! spread them over orders of magnitude (Pennington et al. 2017, sec. 3 and fig. 2).
//!
//! The products run through the engine's f64 GEMM (faer); the singular values come from faer's
//! SVD.

use super::measure::{NetworkSpec, gaussian_inputs};
use crate::error::{Error, Result};
use crate::nn::{Mlp, Scalar, Threads};
use ndarray::{Array2, ArrayView1};
use serde::Serialize;

/// The histogram spans at most this ratio below the largest singular value: J is a product of
/// `depth` matrices formed in f64, so singular values much below s_max·1e-12 are rounding.
pub const HISTOGRAM_RANGE: f64 = 1e-12;

/// Singular values of the input–output Jacobians of a few sample inputs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JacobianSpectrum {
    /// The networks (one per sample input, seeds seed, seed + 1, …).
    pub network: NetworkSpec,
    /// Sample inputs, one network each.
    pub samples: usize,
    /// Mean of s² over every singular value of every sample.
    pub mean_sq: f64,
    /// Π_l σ_w² ∫Dz φ′(√q^l z)² over the hidden layers: the prediction of `mean_sq`.
    pub predicted_mean_sq: f64,
    /// The largest singular value.
    pub max: f64,
    /// The smallest singular value.
    pub min: f64,
    /// Median over samples of s_max/s_min (infinite, serialised as null, when J is singular).
    pub condition_number: f64,
    /// Fraction of singular values in [1/2, 2].
    pub fraction_near_1: f64,
    /// Log-spaced histogram of the singular values.
    pub histogram: Histogram,
    /// Every singular value, sample by sample, each in decreasing order.
    pub singular_values: Vec<Vec<f64>>,
}

/// Counts of values between log-spaced edges.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    /// `counts.len() + 1` increasing edges.
    pub edges: Vec<f64>,
    /// Values in \[edges\[i\], edges\[i + 1\]) (the last bin also holds its upper edge).
    pub counts: Vec<usize>,
}

impl Histogram {
    /// `bins` log-spaced bins from the smallest positive value (but at least `HISTOGRAM_RANGE`
    /// below the largest) to the largest. Smaller values, zeros included, go in the first bin,
    /// whose lower edge is then 0.
    pub fn log_spaced(values: &[f64], bins: usize) -> Self {
        let max = values.iter().copied().fold(0.0, f64::max);
        let min_pos = values.iter().copied().filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min);
        let lo = min_pos.max(max * HISTOGRAM_RANGE);
        let (lo, hi) = if max > 0.0 && lo < max {
            (lo.ln(), max.ln())
        } else {
            let m = if max > 0.0 { max.ln() } else { 0.0 };
            (m - 0.5, m + 0.5)
        };
        let mut edges: Vec<f64> = (0..=bins).map(|i| (lo + (hi - lo) * i as f64 / bins as f64).exp()).collect();
        let mut counts = vec![0; bins];
        for &v in values {
            let i = if v <= 0.0 { 0.0 } else { ((v.ln() - lo) / (hi - lo) * bins as f64).floor() };
            counts[(i.max(0.0) as usize).min(bins - 1)] += 1;
            if v < edges[0] {
                edges[0] = 0.0;
            }
        }
        Self { edges, counts }
    }
}

/// J = ∂h_{L−1}/∂x of `mlp` at the input `x` (`[hidden width, inputs]`), from the pre-activations
/// its last forward pass left for row `row`.
pub fn jacobian(mlp: &Mlp<f64>, row: usize, threads: Threads) -> Array2<f64> {
    let act = mlp.activation;
    let mut j: Option<Array2<f64>> = None;
    for l in 0..mlp.depth() {
        let view = mlp.layer_view(l);
        let w = view.linear.weight.view();
        let mut next = match &j {
            None => w.to_owned(),
            Some(prev) => {
                let mut out = Array2::zeros((w.nrows(), prev.ncols()));
                f64::gemm(out.view_mut(), w, prev.view(), false, threads);
                out
            }
        };
        let z: ArrayView1<f64> = view.z.row(row);
        for (mut r, &zi) in next.rows_mut().into_iter().zip(z.iter()) {
            r *= act.df(zi);
        }
        j = Some(next);
    }
    j.expect("gradscope internal error: a network with hidden layers")
}

/// The singular values of the Jacobians of `samples` networks (one input each), with `bins`
/// histogram bins.
pub fn jacobian_spectrum(network: &NetworkSpec, samples: usize, bins: usize) -> Result<JacobianSpectrum> {
    network.validate()?;
    if samples == 0 {
        return Err(Error::invalid("samples", 0, "must be at least 1"));
    }
    if bins == 0 {
        return Err(Error::invalid("bins", 0, "must be at least 1"));
    }
    let (pool, threads) = network.pool()?;
    let mut singular_values = Vec::with_capacity(samples);
    for s in 0..samples {
        let (mut mlp, mut rng) = network.build(s);
        let x = gaussian_inputs(&mut rng, 1, network.width, network.q0, None);
        let sv = pool.install(|| -> Result<Vec<f64>> {
            mlp.forward(x.view(), threads);
            let j = jacobian(&mlp, 0, threads);
            let m = faer::Mat::<f64>::from_fn(j.nrows(), j.ncols(), |r, c| j[[r, c]]);
            m.singular_values().map_err(|e| Error::invalid("jacobian", format!("{e:?}"), "the SVD did not converge"))
        })?;
        singular_values.push(sv);
    }
    let all: Vec<f64> = singular_values.iter().flatten().copied().collect();
    let n = all.len() as f64;
    let mut conds: Vec<f64> = singular_values
        .iter()
        .map(|s| {
            let (hi, lo) = (s[0], s[s.len() - 1]);
            if lo > 0.0 { hi / lo } else { f64::INFINITY }
        })
        .collect();
    conds.sort_by(f64::total_cmp);
    let predicted = network.mean_field().trajectory(network.q0, network.depth);
    Ok(JacobianSpectrum {
        network: *network,
        samples,
        mean_sq: all.iter().map(|s| s * s).sum::<f64>() / n,
        predicted_mean_sq: predicted.iter().filter_map(|l| l.factor).product(),
        max: all.iter().copied().fold(0.0, f64::max),
        min: all.iter().copied().fold(f64::INFINITY, f64::min),
        condition_number: conds[conds.len() / 2],
        fraction_near_1: all.iter().filter(|&&s| (0.5..=2.0).contains(&s)).count() as f64 / n,
        histogram: Histogram::log_spaced(&all, bins),
        singular_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Init};

    fn net(activation: Activation, init: Init, sigma_w2: f64, width: usize, depth: usize) -> NetworkSpec {
        NetworkSpec { activation, init, sigma_w2, sigma_b2: 0.01, width, depth, q0: 1.0, seed: 7, threads: 1 }
    }

    /// J against central differences of the engine's forward pass.
    #[test]
    fn jacobian_matches_finite_differences() {
        for act in [Activation::Tanh, Activation::Gelu] {
            let spec = net(act, Init::Gaussian, 1.5, 6, 3);
            let (mut mlp, mut rng) = spec.build(0);
            let x = gaussian_inputs(&mut rng, 1, 6, 1.0, None);
            mlp.forward(x.view(), Threads::One);
            let j = jacobian(&mlp, 0, Threads::One);
            let last = spec.depth - 1;
            let h = 1e-6;
            for i in 0..6 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[[0, i]] += h;
                xm[[0, i]] -= h;
                mlp.forward(xp.view(), Threads::One);
                let hp = mlp.layer_view(last).h.row(0).to_owned();
                mlp.forward(xm.view(), Threads::One);
                let hm = mlp.layer_view(last).h.row(0).to_owned();
                for r in 0..6 {
                    let fd = (hp[r] - hm[r]) / (2.0 * h);
                    assert!((fd - j[[r, i]]).abs() < 1e-8, "{} J[{r},{i}] = {} vs fd {fd}", act.name(), j[[r, i]]);
                }
            }
        }
    }

    #[test]
    fn histogram_counts_every_value() {
        // edges 0 (a zero lies below 0.1), 10^−0.5, 1, 10^0.5, 10
        let v = [0.0, 0.1, 1.2, 10.0, 10.0, 3.0];
        let h = Histogram::log_spaced(&v, 4);
        assert_eq!(h.counts, vec![2, 0, 2, 2]); // [0, 0.1], [], [1.2, 3], [10, 10]
        assert_eq!(h.edges[0], 0.0);
        assert!((h.edges[1] - 10f64.powf(-0.5)).abs() < 1e-12 && (h.edges[4] - 10.0).abs() < 1e-12, "{:?}", h.edges);
        // values far below the largest are lumped into the first bin
        let h = Histogram::log_spaced(&[1e-30, 1e-6, 1.0], 3);
        assert!((h.edges[1] - 1e-8).abs() < 1e-20 && h.edges[0] == 0.0, "{:?}", h.edges);
        assert_eq!(h.counts, vec![1, 1, 1]);
    }
}
