//! gradscope trains deep neural networks with explicit chain-rule backpropagation and shows,
//! layer by layer, how the gradient vanishes (or explodes) on its way back to the input.
//!
//! Backpropagation multiplies one local derivative per layer,
//! `∂L/∂W₁ = ∂L/∂ŷ · ∂ŷ/∂h₂ · ∂h₂/∂h₁ · ∂h₁/∂W₁`; the sigmoid's derivative is at most 1/4, so in a
//! deep sigmoid network the product shrinks layer after layer and the first layers barely learn.
//!
//! Layout, dependencies pointing one way: `cli → train → {probe, optim} → nn`; `data` and `io`
//! sit beside them, and `theory → nn` predicts what the probes measure.
//!
//! ```
//! use gradscope::nn::{Activation, Init, Loss, MlpConfig, Targets, Threads};
//! use ndarray::array;
//! use rand::SeedableRng;
//!
//! // The lecture's network: h1 = σ(x·W1 + b1), h2 = σ(h1·W2 + b2), ŷ = h2·W3 + b3.
//! let cfg = MlpConfig::uniform(3, 4, 2, 1, Activation::Sigmoid, Init::Pytorch);
//! let mut mlp = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
//! let x = array![[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]];
//! let y = array![[1.0], [0.0]];
//! let loss = mlp.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Sse, Threads::One);
//! assert!(loss > 0.0);
//! // the first layer's gradient is smaller than the last one's: sigmoid′ ≤ 1/4
//! let norm = |l: usize| mlp.layers[l].grad_weight.iter().map(|g| g * g).sum::<f64>().sqrt();
//! println!("‖∂L/∂W1‖ = {:.2e}, ‖∂L/∂W3‖ = {:.2e}", norm(0), norm(2));
//! ```
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod io;
pub mod nn;
pub mod nonfinite;
pub mod optim;
pub mod prepare;
pub mod probe;
pub mod report;
pub mod resources;
pub mod sweep;
pub mod theory;
pub mod train;

pub use error::{Error, Result};
