//! Theory beside measurement: what mean-field theory predicts for a wide random MLP before it
//! is trained, and the measurements that check it.
//!
//! - [`mean_field`]: the length and correlation maps, χ₁, ξ_q, ξ_c and the critical σ_w²
//!   (Poole et al. 2016, "Exponential expressivity in deep neural networks through transient
//!   chaos"; Schoenholz et al. 2017, "Deep Information Propagation"), and the layer-by-layer
//!   prediction of E‖∂L/∂z_l‖² that the report draws.
//! - [`quadrature`]: the Gaussian integrals behind them.
//! - [`measure`](mod@measure): random networks built by the engine, measured beside the prediction.
//! - [`jacobian`]: the singular values of the input–output Jacobian at initialisation
//!   (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning
//!   through dynamical isometry").
//!
//! The theory integrates the engine's own φ and φ′ ([`Activation::f`], [`Activation::df`]), so a
//! prediction and a measurement differ only by what the theory leaves out (finite width).
//!
//! ```
//! use gradscope::nn::Activation;
//! use gradscope::theory::MeanField;
//!
//! // ReLU with He's σ_w² = 2 and no bias is critical: χ₁ = 1.
//! let theory = MeanField::new(Activation::Relu, 2.0, 0.0)?.fixed_point(1.0);
//! assert!((theory.chi1 - 1.0).abs() < 1e-12);
//! # Ok::<(), gradscope::Error>(())
//! ```
//!
//! [`Activation::f`]: crate::nn::Activation::f
//! [`Activation::df`]: crate::nn::Activation::df

pub mod jacobian;
pub mod mean_field;
pub mod measure;
pub mod predict;
pub mod quadrature;
pub mod recurrent;

pub use jacobian::{JacobianSpectrum, jacobian_spectrum};
pub use mean_field::{
    Convergence, Critical, FixedPointTheory, InitVariances, LayerPrediction, MeanField, Phase, QFixedPoint,
    critical_sigma_w2, d2f, init_variances, predicted_decay,
};
pub use measure::{MeasureSpec, Measurement, NetworkSpec, measure};
pub use predict::{Prediction, Query, Source, predict};
