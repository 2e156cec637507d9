//! gradscope trains deep neural networks with explicit chain-rule backpropagation and shows,
//! layer by layer, how the gradient vanishes (or explodes) on its way back to the input.
//!
//! Backpropagation multiplies one local derivative per layer,
//! `∂L/∂W₁ = ∂L/∂ŷ · ∂ŷ/∂h₂ · ∂h₂/∂h₁ · ∂h₁/∂W₁`; the sigmoid's derivative is at most 1/4, so in a
//! deep sigmoid network the product shrinks layer after layer and the first layers barely learn.
//!
//! Layout: modules and what each may import (`use crate::…`), checked by `tests/layers.rs`:
//!
//! | module | imports from |
//! |---|---|
//! | `error` | — |
//! | `nn` | `error` |
//! | `data` | `error` |
//! | `optim`, `probe` | `nn`, `optim`, `error` |
//! | `nonfinite` | `nn`, `optim`, `probe` |
//! | `io` | `nn`, `optim`, `probe`, `nonfinite`, `error` |
//! | `summary` | `nonfinite`, `probe` |
//! | `config` | `nn`, `optim`, `data`, `error` |
//! | `prepare` | `config`, `data`, `io`, `nn`, `error` |
//! | `resources` | `config`, `data`, `optim`, `error` |
//! | `theory` | `nn`, `error` |
//! | `verdict` | — |
//! | `report` | `config`, `io`, `probe`, `summary`, `verdict`, `error` (records only: no `nn`, `theory`, `run`) |
//! | `run` | all of the above but `sweep`, `bench`, `demo` |
//! | `sweep` | `config`, `io`, `summary`, `report`, `theory`, `nn`, `error` |
//! | `export` | `report`, `probe`, `io`, `error` |
//! | `demo` | `config` |
//! | `bench` | `nn`, `optim`, `probe`, `nonfinite` |
//! | `peak` | (none) |
//!
//! The binary's command-line layer (`src/cli/`, private to it) parses flags, calls this library
//! and prints.
//!
//! A run, from config to report ([`run::train_into`] writes the folder a report reads):
//!
//! ```no_run
//! use gradscope::{Config, Mode, Silent, run};
//! # fn main() -> gradscope::Result<()> {
//! let config = Config { depth: 10, steps: Some(300), ..Config::default() };
//! let dir = std::path::Path::new("out/sigmoid-depth10");
//! let (_spec, outcome) = run::train_into(&config, dir, Mode::New, &mut Silent)?;
//! println!("vanishing ratio at step 0: {:.2e}", outcome.summary.vanishing_ratio);
//! run::write_report(&[dir.to_path_buf()], dir, "library example".into())?;
//! # Ok(())
//! # }
//! ```
//!
//! The engine alone:
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
pub mod config;
pub mod data;
pub mod demo;
pub mod error;
pub mod export;
pub mod io;
pub mod nn;
pub mod nonfinite;
pub mod optim;
pub mod peak;
pub mod prepare;
pub mod probe;
pub mod report;
pub mod resources;
pub mod run;
pub mod summary;
pub mod sweep;
pub mod theory;
pub mod verdict;

pub use config::{Config, OnNonFinite, RunSpec};
pub use error::{Error, Result};
pub use probe::{GradientProbe, LayerStats, StepRecord};
pub use report::Report;
pub use run::{Mode, Observer, Outcome, RunDir, Silent, Trainer, train, train_from, train_into};
pub use summary::{RunStatus, Summary};
