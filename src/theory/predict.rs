//! The prediction `gradscope theory` prints (and `--json` writes, and the Python package's
//! `gradscope.theory` returns): the mean-field fixed point and the layer-by-layer decay of a
//! random MLP, from the activation, the init's σ_w², σ_b² and the inputs' q⁰.

use super::mean_field::{CRITICAL_RANGE, check};
use super::{Critical, FixedPointTheory, LayerPrediction, MeanField, critical_sigma_w2, init_variances};
use crate::error::Named;
use crate::error::{Error, Result};
use crate::nn::{Activation, Init};
use serde::Serialize;

/// What a prediction is asked for (the flags of `gradscope theory`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Query {
    /// Hidden activation.
    pub activation: Activation,
    /// Initialisation (gaussian and orthogonal take σ_w², σ_b²; the others stand for theirs).
    pub init: Init,
    /// σ_w² (gaussian and orthogonal; or `critical`).
    pub sigma_w2: Option<f64>,
    /// σ_b².
    pub sigma_b2: f64,
    /// Solve for the σ_w² with χ₁ = 1.
    pub critical: bool,
    /// ‖x‖²/fan_in of the inputs.
    pub q0: f64,
    /// Inputs at the fixed point: q⁰ = (q* − σ_b²)/σ_w².
    pub q0_fixed: bool,
    /// Hidden layers (≥ 1).
    pub depth: usize,
    /// Units per layer (what a non-Gaussian init amounts to depends on it).
    pub width: usize,
}

/// Where σ_w² and σ_b² came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `--sigma-w2`, `--sigma-b2`.
    Given,
    /// `--critical`: the σ_w² with χ₁ = 1.
    Critical,
    /// What `--init` amounts to in square layers of `--width`.
    Init,
}

/// The prediction `theory` prints (`--json`: the `theory` field).
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    /// The activation's name.
    pub activation: String,
    /// The initialisation's name.
    pub init: String,
    /// σ_w².
    pub sigma_w2: f64,
    /// σ_b².
    pub sigma_b2: f64,
    /// Where they came from.
    pub source: Source,
    /// ‖x‖²/fan_in of the inputs.
    pub q0: f64,
    /// Hidden layers.
    pub depth: usize,
    /// q*, χ₁, ξ_q, c*, χ_c, ξ_c, the trainable depth.
    pub fixed_point: FixedPointTheory,
    /// χ₁^depth: E‖∂L/∂z_0‖² / E‖∂L/∂z_depth‖² at the fixed point.
    pub ratio_at_fixed_point: f64,
    /// The same ratio following q^l from q¹ (the product of the per-layer factors).
    pub ratio_following_q: f64,
    /// Layer by layer (output layer last).
    pub layers: Vec<LayerPrediction>,
}

/// The prediction for `q`, or an error naming the value that makes it impossible.
pub fn predict(q: &Query) -> Result<Prediction> {
    check("q0", q.q0, true)?;
    if q.depth == 0 {
        return Err(Error::invalid("depth", 0, "must be at least 1 hidden layer"));
    }
    if q.width == 0 {
        return Err(Error::invalid("width", 0, "must be at least 1"));
    }
    let (sigma_w2, sigma_b2, source) = sigmas(q)?;
    let mf = MeanField::new(q.activation, sigma_w2, sigma_b2)?;
    let q0 = if q.q0_fixed { mf.fixed_point_input(q.q0)? } else { q.q0 };
    let fixed_point = mf.fixed_point(q0);
    let layers = mf.trajectory(q0, q.depth);
    Ok(Prediction {
        activation: q.activation.name(),
        init: q.init.name(),
        sigma_w2,
        sigma_b2,
        source,
        q0,
        depth: q.depth,
        ratio_at_fixed_point: fixed_point.chi1.powi(q.depth as i32),
        ratio_following_q: layers[0].grad_z2,
        fixed_point,
        layers,
    })
}

/// σ_w², σ_b² and where they came from: the flags, the critical σ_w², or what `--init` amounts to.
fn sigmas(a: &Query) -> Result<(f64, f64, Source)> {
    let (activation, init) = (a.activation, a.init);
    let takes_sigmas = matches!(init, Init::Gaussian | Init::Orthogonal);
    Ok(match (takes_sigmas, a.sigma_w2, a.critical) {
        (true, Some(w), false) => (w, a.sigma_b2, Source::Given),
        (true, None, true) => {
            let name = activation.name();
            match critical_sigma_w2(activation, a.sigma_b2, a.q0)? {
                Critical::At(w) => (w, a.sigma_b2, Source::Critical),
                Critical::Jump(w) => {
                    let hint = format!(
                        "no σ_w² makes χ₁ = 1 for {name} at this σ_b²: χ₁ jumps across 1 at σ_w² ≈ {w:.4}, where the \
                         fixed point q* that q^l reaches from q¹ vanishes and q^l grows without bound; give \
                         --sigma-w2 instead"
                    );
                    return Err(Error::invalid("sigma_b2", a.sigma_b2, hint));
                }
                Critical::None => {
                    let hint = format!(
                        "no σ_w² in [{}, {}] makes χ₁ = 1 for {name} at this σ_b²: χ₁ − 1 never turns from \
                         negative to positive there; give --sigma-w2 instead",
                        CRITICAL_RANGE.0, CRITICAL_RANGE.1
                    );
                    return Err(Error::invalid("sigma_b2", a.sigma_b2, hint));
                }
            }
        }
        (true, None, false) => {
            return Err(Error::invalid("sigma_w2", "(none)", "give --sigma-w2 X, or --critical to solve for χ₁ = 1"));
        }
        (false, None, false) => {
            let v = init_variances(init, activation, a.width, a.width, 1.0, 0.0);
            (v.sigma_w2, v.sigma_b2, Source::Init)
        }
        (false, _, _) => {
            return Err(Error::invalid(
                "init",
                init.name(),
                "sets σ_w² and σ_b² itself: drop --sigma-w2 and --critical, or use --init gaussian",
            ));
        }
        (true, Some(_), true) => {
            return Err(Error::invalid("critical", true, "give --sigma-w2 or --critical, not both"));
        }
    })
}
