//! The engine: layers that own their forward and backward passes, losses, initialisers.

pub mod activation;
pub mod fastmath;
pub mod gradcheck;
pub mod hook;
pub mod init;
pub mod kernel;
pub mod linear;
pub mod loss;
pub mod mlp;
pub mod norm;
pub mod par;
pub mod recurrent;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod sgemm;
pub mod simd;
pub mod tensor;

pub use activation::{Activation, ActivationKind};
pub use hook::Hook;
pub use init::Init;
pub use linear::Linear;
pub use loss::{Loss, Targets};
pub use mlp::{Arch, ForwardView, LAYERS, LayerView, Mlp, MlpConfig, NORMS, Residual, SHORTCUTS};
pub use norm::{Norm, NormChoice, NormKind, NormPosition};
pub use scalar::{Scalar, Threads};
pub use tensor::{Module, Name, NameStyle, Network, Prefix, Shape, TensorKind, TensorMut, TensorRef};
