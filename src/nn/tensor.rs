//! One description of a model's tensors.
//!
//! Every layer declares its named tensors once, in [`Module::visit`] and [`Module::visit_mut`]:
//! name, kind (trained weight or bias, or an untrained buffer), shape, values and gradient. A
//! network composes its layers' visits under their prefixes (`layers.{l}`, `norms.{l}`,
//! `shortcuts.{l}` for [`crate::nn::Mlp`]) in one place, and everything that walks a model's
//! tensors derives from that walk: the state list of `weights.safetensors` and checkpoints, the
//! trainable tensors the optimizer, clipping and the gradient checks go through, the
//! non-finite guard and parameter norms. A tensor declared here is saved, loaded, trained,
//! clipped and checked without another list to edit.
//!
//! Visiting allocates nothing: a tensor's [`Name`] is a `(group, index, leaf)` value that is
//! formatted only where a string is needed.

use std::fmt;

/// What a tensor is to training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A trained weight (a linear layer's W, a norm layer's γ, a recurrent layer's W_ih, …).
    Weight,
    /// A trained bias (b, β, …).
    Bias,
    /// State that is not trained (batch norm's running estimates and batch count): saved and
    /// restored, never updated by the optimizer, without a gradient.
    Buffer,
}

impl TensorKind {
    /// True for weights and biases (the tensors the optimizer updates).
    pub fn is_param(&self) -> bool {
        *self != Self::Buffer
    }
}

/// A tensor's name as PyTorch's `state_dict` spells it: `{group}.{index}.{leaf}`, e.g.
/// `layers.3.weight`; formatted lazily (`Display`), so that visiting allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    /// The module list the layer belongs to (`layers`, `norms`, `shortcuts`).
    pub group: &'static str,
    /// The layer's index in that list.
    pub index: usize,
    /// The tensor within the layer (`weight`, `bias`, `running_mean`, …).
    pub leaf: &'static str,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.group, self.index, self.leaf)
    }
}

/// Where a layer sits in its network: the group and index its tensors' names start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The module list (`layers`, `norms`, `shortcuts`).
    pub group: &'static str,
    /// The index in that list.
    pub index: usize,
}

impl Prefix {
    /// The name of this layer's tensor `leaf`.
    pub fn name(&self, leaf: &'static str) -> Name {
        Name { group: self.group, index: self.index, leaf }
    }
}

/// A tensor's shape as saved: up to two dimensions (`[]` for a 0-dimensional tensor holding one
/// value). A value rather than a borrowed slice, so that a writable visit can hand out the
/// values and the shape of one array together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    dims: [usize; 2],
    ndim: usize,
}

impl Shape {
    /// A 0-dimensional tensor (one value).
    pub const SCALAR: Shape = Shape { dims: [0, 0], ndim: 0 };

    /// The shape `dims` (at most two dimensions).
    ///
    /// **Panics** on more than two dimensions (no layer has such a tensor; a new one widens
    /// this type).
    pub fn of(dims: &[usize]) -> Self {
        assert!(dims.len() <= 2, "gradscope internal error: tensors have at most two dimensions");
        let mut d = [0; 2];
        d[..dims.len()].copy_from_slice(dims);
        Self { dims: d, ndim: dims.len() }
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.ndim]
    }

    /// The number of values.
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }
}

/// One tensor of a model, read-only.
#[derive(Clone, Copy, Debug)]
pub struct TensorRef<'a, F> {
    /// Its `state_dict` name.
    pub name: Name,
    /// Weight, bias or buffer.
    pub kind: TensorKind,
    /// Its shape as saved.
    pub shape: Shape,
    /// The values, row-major.
    pub value: &'a [F],
    /// ∂L/∂value of the last backward pass; `None` for buffers.
    pub grad: Option<&'a [F]>,
}

/// One tensor of a model, writable.
#[derive(Debug)]
pub struct TensorMut<'a, F> {
    /// Its `state_dict` name.
    pub name: Name,
    /// Weight, bias or buffer.
    pub kind: TensorKind,
    /// Its shape as saved.
    pub shape: Shape,
    /// The values, row-major.
    pub value: &'a mut [F],
    /// ∂L/∂value; `None` for buffers.
    pub grad: Option<&'a mut [F]>,
}

/// A layer (or a block of layers) that owns named tensors.
///
/// Both visits list the same tensors in the same order; that order is the model's state order
/// (safetensors, checkpoints) and, less the buffers, the optimizer's.
pub trait Module<F> {
    /// Calls `f` on every tensor of this layer, named under `prefix`.
    fn visit<'a>(&'a self, prefix: Prefix, f: &mut dyn FnMut(TensorRef<'a, F>));
    /// [`Module::visit`], writable.
    fn visit_mut<'a>(&'a mut self, prefix: Prefix, f: &mut dyn FnMut(TensorMut<'a, F>));
}

/// The contiguous data of an owned array (a broken invariant otherwise: gradscope's arrays are
/// always standard-layout).
pub(crate) fn data<F, D: ndarray::Dimension>(a: &ndarray::Array<F, D>) -> &[F] {
    a.as_slice().expect("gradscope internal error: tensors are contiguous")
}

/// [`data`], writable.
pub(crate) fn data_mut<F, D: ndarray::Dimension>(a: &mut ndarray::Array<F, D>) -> &mut [F] {
    a.as_slice_mut().expect("gradscope internal error: tensors are contiguous")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_format_as_pytorch_state_dict_keys() {
        let p = Prefix { group: "norms", index: 3 };
        assert_eq!(p.name("running_var").to_string(), "norms.3.running_var");
        assert!(TensorKind::Weight.is_param() && TensorKind::Bias.is_param() && !TensorKind::Buffer.is_param());
    }
}
