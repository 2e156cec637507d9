//! Measurement beside prediction: random networks built by the engine, their forward pass's
//! q^l and pair correlations c^l and their backward pass's E‖∂L/∂z_l‖², averaged over seeds.
//!
//! What is measured, for `seeds` networks of `depth` hidden layers of `width` units (inputs and
//! outputs also `width` wide, so every layer is square), weights from `init` with σ_w², σ_b²:
//!
//! ```text
//! inputs     `pairs` pairs (x_a, x_b): x_a ~ N(0, q⁰ I), x_b = c⁰ x_a + √(1 − c⁰²) ξ, ξ ~ N(0, q⁰ I)
//! loss       L = Σ g ⊙ ŷ with g ~ N(0, 1) drawn apart from the network, so ∂L/∂ŷ = g is
//!            independent of the forward pass, as the mean-field gradient calculation assumes
//!            (Schoenholz et al. 2017, sec. 4)
//! q^l        mean of z_l² over examples, units and seeds
//! ‖δ_l‖²     mean over seeds of ‖∂L/∂z_l‖²_F, divided by the output layer's
//! c^l        mean over pairs and seeds of z_a·z_b / (‖z_a‖‖z_b‖)
//! factor     exp(−slope) of the least-squares line through ln ‖δ_l‖² over layers
//!            fit_from..=depth (the output layer included)
//! ```
//!
//! The fit starts at the first hidden layer whose predicted q^l is within 1% of q*, so the
//! transient from q¹ to q* is left out and the fitted factor estimates χ₁ itself; the
//! prediction is fitted over the same layers for a like-for-like comparison.

use super::mean_field::{FixedPointTheory, LayerPrediction, MeanField, QFixedPoint, check};
use crate::error::{Error, Named, Result};
use crate::nn::{Activation, Init, Mlp, MlpConfig, Threads};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

/// The random networks to build.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NetworkSpec {
    /// Hidden activation.
    pub activation: Activation,
    /// `gaussian` or `orthogonal` (the two inits that take σ_w², σ_b²).
    #[serde(serialize_with = "init_name")]
    pub init: Init,
    /// σ_w².
    pub sigma_w2: f64,
    /// σ_b².
    pub sigma_b2: f64,
    /// Units of every layer (inputs and outputs too).
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// ‖x‖²/width of the inputs.
    pub q0: f64,
    /// Seed of the first network; network s uses seed + s.
    pub seed: u64,
    /// Threads for the matrix products.
    pub threads: usize,
}

fn init_name<S: serde::Serializer>(init: &Init, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&init.name())
}

impl NetworkSpec {
    /// Checks the sizes and variances.
    pub fn validate(&self) -> Result<()> {
        MeanField::new(self.activation, self.sigma_w2, self.sigma_b2)?;
        check("q0", self.q0, true)?;
        if !matches!(self.init, Init::Gaussian | Init::Orthogonal) {
            return Err(Error::invalid(
                "init",
                self.init.name(),
                "theory builds networks with gaussian or orthogonal weights (the inits that take σ_w², σ_b²)",
            ));
        }
        if self.width == 0 {
            return Err(Error::invalid("width", 0, "must be at least 1"));
        }
        if self.depth < 2 {
            return Err(Error::invalid("depth", self.depth, "must be at least 2 hidden layers to measure a decay"));
        }
        Ok(())
    }

    /// The mean-field description of these networks.
    pub fn mean_field(&self) -> MeanField {
        MeanField { activation: self.activation, sigma_w2: self.sigma_w2, sigma_b2: self.sigma_b2 }
    }

    /// Network number `s` and the RNG it was drawn from (to draw its inputs next).
    pub fn build(&self, s: usize) -> (Mlp<f64>, ChaCha8Rng) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.wrapping_add(s as u64));
        let mut cfg = MlpConfig::uniform(self.width, self.width, self.depth, self.width, self.activation, self.init);
        cfg.sigma_w2 = self.sigma_w2;
        cfg.sigma_b2 = self.sigma_b2;
        (cfg.init::<f64, _>(&mut rng), rng)
    }

    /// A rayon pool of `threads` threads and the matching [`Threads`].
    pub(crate) fn pool(&self) -> Result<(rayon::ThreadPool, Threads)> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| Error::invalid("threads", self.threads, format!("cannot start the thread pool: {e}")))?;
        Ok((pool, Threads::new(self.threads)))
    }
}

/// Draws `rows` inputs of `width` with E x² = q0 (row pairs correlated by c0 when `c0` is set).
pub(crate) fn gaussian_inputs(
    rng: &mut ChaCha8Rng,
    rows: usize,
    width: usize,
    q0: f64,
    c0: Option<f64>,
) -> Array2<f64> {
    let sd = q0.sqrt();
    let mut x = Array2::from_shape_simple_fn((rows, width), || {
        let v: f64 = StandardNormal.sample(rng);
        sd * v
    });
    if let Some(c0) = c0 {
        let s = (1.0 - c0 * c0).sqrt();
        for p in 0..rows / 2 {
            let a = x.row(2 * p).to_owned();
            let mut b = x.row_mut(2 * p + 1);
            b.zip_mut_with(&a, |b, &a| *b = c0 * a + s * *b);
        }
    }
    x
}

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeasureSpec {
    /// The networks.
    pub network: NetworkSpec,
    /// Networks to average over.
    pub seeds: usize,
    /// Input pairs per network (2 × pairs examples).
    pub pairs: usize,
    /// Correlation of the two inputs of a pair.
    pub c0: f64,
}

impl MeasureSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        self.network.validate()?;
        if self.seeds == 0 {
            return Err(Error::invalid("seeds", 0, "must be at least 1"));
        }
        if self.pairs == 0 {
            return Err(Error::invalid("pairs", 0, "must be at least 1"));
        }
        if !(self.c0.is_finite() && (-1.0..=1.0).contains(&self.c0)) {
            return Err(Error::invalid("c0", self.c0, "is a correlation: must lie in [−1, 1]"));
        }
        Ok(())
    }
}

/// One linear layer, measured and predicted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerComparison {
    /// 0-based index of the linear layer (the output layer is `depth`).
    pub layer: usize,
    /// Predicted q^l.
    pub q_predicted: f64,
    /// Measured mean z_l².
    pub q_measured: f64,
    /// Predicted E‖∂L/∂z_l‖² relative to the output layer.
    pub grad_z2_predicted: f64,
    /// Measured ‖∂L/∂z_l‖² relative to the output layer.
    pub grad_z2_measured: f64,
    /// Predicted pair correlation c^l.
    pub c_predicted: f64,
    /// Measured pair correlation.
    pub c_measured: f64,
}

/// The comparison `gradscope theory --measure` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// What was measured.
    pub spec: MeasureSpec,
    /// The fixed-point theory.
    pub theory: FixedPointTheory,
    /// Layer by layer, input first, output last.
    pub layers: Vec<LayerComparison>,
    /// The fit's first layer (its last is the output layer).
    pub fit_from: usize,
    /// Fitted per-layer factor of the measured ‖∂L/∂z_l‖².
    pub measured_factor: f64,
    /// The same fit through the predicted E‖∂L/∂z_l‖².
    pub predicted_factor: f64,
    /// measured_factor / χ₁ − 1.
    pub relative_error: f64,
}

/// Measures `spec`'s networks and puts the prediction beside them.
pub fn measure(spec: &MeasureSpec) -> Result<Measurement> {
    spec.validate()?;
    let net = spec.network;
    let mf = net.mean_field();
    let theory = mf.fixed_point(net.q0);
    let predicted = mf.trajectory(net.q0, net.depth);
    let c_predicted = mf.correlation_trajectory(net.q0, spec.c0, net.depth);

    let n_layers = net.depth + 1;
    let rows = 2 * spec.pairs;
    let (mut q, mut grad2, mut corr) = (vec![0.0; n_layers], vec![0.0; n_layers], vec![0.0; n_layers]);
    let (pool, threads) = net.pool()?;
    for s in 0..spec.seeds {
        let (mut mlp, mut rng) = net.build(s);
        let x = gaussian_inputs(&mut rng, rows, net.width, net.q0, Some(spec.c0));
        let g = Array2::from_shape_simple_fn((rows, net.width), || StandardNormal.sample(&mut rng));
        pool.install(|| {
            mlp.forward(x.view(), threads);
            mlp.grad_output_mut().assign(&g);
            mlp.backward(x.view(), threads);
        });
        for l in 0..n_layers {
            let v = mlp.layer_view(l);
            q[l] += v.z.iter().map(|z| z * z).sum::<f64>() / v.z.len() as f64;
            grad2[l] += v.grad_z.iter().map(|d| d * d).sum::<f64>();
            let mut c = 0.0;
            for p in 0..spec.pairs {
                let (a, b) = (v.z.index_axis(Axis(0), 2 * p), v.z.index_axis(Axis(0), 2 * p + 1));
                c += a.dot(&b) / (a.dot(&a) * b.dot(&b)).sqrt();
            }
            corr[l] += c / spec.pairs as f64;
        }
    }
    let seeds = spec.seeds as f64;
    let out = grad2[net.depth];
    let layers: Vec<LayerComparison> = (0..n_layers)
        .map(|l| LayerComparison {
            layer: l,
            q_predicted: predicted[l].q,
            q_measured: q[l] / seeds,
            grad_z2_predicted: predicted[l].grad_z2,
            grad_z2_measured: grad2[l] / out,
            c_predicted: c_predicted[l],
            c_measured: corr[l] / seeds,
        })
        .collect();

    let fit_from = fit_start(&predicted, theory.q_fixed_point, net.depth);
    let measured_factor = fitted_factor(&layers.iter().map(|l| l.grad_z2_measured).collect::<Vec<_>>(), fit_from);
    let predicted_factor = fitted_factor(&layers.iter().map(|l| l.grad_z2_predicted).collect::<Vec<_>>(), fit_from);
    let relative_error = measured_factor / theory.chi1 - 1.0;
    Ok(Measurement { spec: *spec, theory, layers, fit_from, measured_factor, predicted_factor, relative_error })
}

/// The first hidden layer whose predicted q^l is within 1% of q* (0 without a finite q*),
/// leaving at least three layers to fit.
pub fn fit_start(predicted: &[LayerPrediction], fp: QFixedPoint, depth: usize) -> usize {
    let from = match fp {
        QFixedPoint::Finite(q_star) => {
            predicted.iter().position(|l| (l.q - q_star).abs() <= 0.01 * q_star).unwrap_or(depth)
        }
        _ => 0,
    };
    from.min(depth.saturating_sub(2))
}

/// exp(−slope) of the least-squares line through (l, ln values\[l\]) for l ≥ from: the per-layer
/// factor by which the values grow towards lower l.
pub fn fitted_factor(values: &[f64], from: usize) -> f64 {
    let pts: Vec<(f64, f64)> = values.iter().enumerate().skip(from).map(|(l, v)| (l as f64, v.ln())).collect();
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = pts.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    (-sxy / sxx).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_factor_recovers_a_geometric_decay() {
        let values: Vec<f64> = (0..10).map(|l| 0.8f64.powi(10 - l)).collect();
        assert!((fitted_factor(&values, 0) - 0.8).abs() < 1e-12);
        assert!((fitted_factor(&values, 6) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn paired_inputs_have_the_asked_moments() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = gaussian_inputs(&mut rng, 2, 100_000, 2.0, Some(0.6));
        let (a, b) = (x.row(0), x.row(1));
        let n = a.len() as f64;
        assert!((a.dot(&a) / n - 2.0).abs() < 0.05);
        assert!((b.dot(&b) / n - 2.0).abs() < 0.05);
        assert!((a.dot(&b) / (a.dot(&a) * b.dot(&b)).sqrt() - 0.6).abs() < 0.01);
    }

    #[test]
    fn bad_specs_name_the_value() {
        let net = NetworkSpec {
            activation: Activation::Tanh,
            init: Init::Gaussian,
            sigma_w2: 1.0,
            sigma_b2: 0.0,
            width: 10,
            depth: 3,
            q0: 1.0,
            seed: 0,
            threads: 1,
        };
        let spec = MeasureSpec { network: net, seeds: 1, pairs: 1, c0: 0.5 };
        assert!(spec.validate().is_ok());
        let bad = |s: MeasureSpec| s.validate().unwrap_err().to_string();
        assert!(bad(MeasureSpec { c0: 1.5, ..spec }).contains("c0 = 1.5"));
        assert!(bad(MeasureSpec { seeds: 0, ..spec }).contains("seeds = 0"));
        let net2 = NetworkSpec { init: Init::XavierNormal, ..net };
        assert!(bad(MeasureSpec { network: net2, ..spec }).contains("init = xavier_normal"));
        let net3 = NetworkSpec { sigma_w2: -1.0, ..net };
        assert!(bad(MeasureSpec { network: net3, ..spec }).contains("sigma_w2 = -1"));
    }
}
