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
//! Visiting allocates nothing: a tensor's [`Name`] is a `(group, index, leaf, style)` value that
//! is formatted only where a string is needed. A whole model ([`crate::nn::Mlp`],
//! [`crate::nn::recurrent::RecurrentNet`]) implements [`Network`]: its two visits, and the
//! derived lists (state, trainable tensors, their lengths) as provided methods.

use std::fmt;

/// What a tensor is to training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A trained weight (a linear layer's W, a norm layer's γ, a recurrent layer's W_ih, …).
    Weight,
    /// A trained bias (b, β, …).
    Bias,
    /// State that is not trained (batch norm's running estimates): saved and restored, never
    /// updated by the optimizer, without a gradient.
    Buffer,
    /// A [`TensorKind::Buffer`] that counts (batch norm's `num_batches_tracked`): kept in the
    /// model's float type (exact to 2²⁴ in f32), saved as int64, as PyTorch keeps it.
    Count,
}

impl TensorKind {
    /// True for weights and biases (the tensors the optimizer updates).
    pub fn is_param(&self) -> bool {
        matches!(self, Self::Weight | Self::Bias)
    }
}

/// How a [`Name`] is spelled: PyTorch's module lists (`nn.ModuleList`) put the index between
/// the list and the tensor, its recurrent modules put it after the tensor, and a single module
/// has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameStyle {
    /// `{group}.{index}.{leaf}`: `layers.3.weight`.
    Dotted,
    /// `{group}.{leaf}_l{index}`: `rnn.weight_ih_l0` (`nn.RNN`, `nn.LSTM`, `nn.GRU`).
    Suffix,
    /// `{group}.{leaf}`, the index unused: `fc.weight`.
    Plain,
}

/// A tensor's name as PyTorch's `state_dict` spells it (see [`NameStyle`]), e.g.
/// `layers.3.weight` or `rnn.weight_hh_l1`; formatted lazily (`Display`), so that visiting
/// allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    /// The module (list) the layer belongs to (`layers`, `norms`, `shortcuts`, `rnn`, `fc`).
    pub group: &'static str,
    /// The layer's index in that list (0 for a single module).
    pub index: usize,
    /// The tensor within the layer (`weight`, `bias`, `running_mean`, `weight_ih`, …).
    pub leaf: &'static str,
    /// How the three are joined.
    pub style: NameStyle,
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.style {
            NameStyle::Dotted => write!(f, "{}.{}.{}", self.group, self.index, self.leaf),
            NameStyle::Suffix => write!(f, "{}.{}_l{}", self.group, self.leaf, self.index),
            NameStyle::Plain => write!(f, "{}.{}", self.group, self.leaf),
        }
    }
}

/// Where a layer sits in its network: the group and index its tensors' names start with, and
/// how they are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The module list (`layers`, `norms`, `shortcuts`, `rnn`, `fc`).
    pub group: &'static str,
    /// The index in that list.
    pub index: usize,
    /// The spelling of the names under it.
    pub style: NameStyle,
}

impl Prefix {
    /// Layer `index` of a module list: `{group}.{index}.{leaf}`.
    pub fn dotted(group: &'static str, index: usize) -> Self {
        Self { group, index, style: NameStyle::Dotted }
    }

    /// Layer `index` of a recurrent module: `{group}.{leaf}_l{index}`.
    pub fn suffix(group: &'static str, index: usize) -> Self {
        Self { group, index, style: NameStyle::Suffix }
    }

    /// A single module: `{group}.{leaf}`.
    pub fn plain(group: &'static str) -> Self {
        Self { group, index: 0, style: NameStyle::Plain }
    }

    /// The name of this layer's tensor `leaf`.
    pub fn name(&self, leaf: &'static str) -> Name {
        Name { group: self.group, index: self.index, leaf, style: self.style }
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

/// A whole model: the one description of its tensors ([`Network::visit`], composed from its
/// layers' [`Module`] visits under their prefixes) and everything derived from it.
///
/// The provided methods are the lists that used to be written per model: the state of
/// `weights.safetensors` and checkpoints, the trainable tensors (optimizer, clipping, gradient
/// checks) and their lengths. [`Network::measures`] says which tensors' norms the probe
/// records, one per record layer, in visiting order.
pub trait Network<F> {
    /// Calls `f` on every tensor of the model, in state order. Allocates nothing.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(TensorRef<'a, F>));
    /// [`Network::visit`], writable, in the same order.
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(TensorMut<'a, F>));
    /// True for the tensors whose ‖W‖, ‖∂L/∂W‖ and ‖ΔW‖ the probe records: one per record layer
    /// (an MLP's `layers.{l}.weight`), met in the record's layer order.
    fn measures(name: Name, kind: TensorKind) -> bool
    where
        Self: Sized;

    /// Every tensor, collected.
    fn tensors(&self) -> Vec<TensorRef<'_, F>> {
        let mut out = Vec::new();
        self.visit(&mut |t| out.push(t));
        out
    }

    /// Visits every trainable tensor (weights and biases: [`Network::visit`] less the buffers)
    /// with its name, kind, values and gradient, in state order. Allocates nothing.
    fn for_each_param(&mut self, mut f: impl FnMut(Name, TensorKind, &mut [F], &mut [F]))
    where
        Self: Sized,
    {
        self.visit_mut(&mut |t| {
            if let Some(g) = t.grad {
                f(t.name, t.kind, t.value, g);
            }
        });
    }

    /// Every trainable tensor's length, in the order of [`Network::for_each_param`].
    fn param_lens(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.visit(&mut |t| {
            if t.grad.is_some() {
                out.push(t.value.len());
            }
        });
        out
    }

    /// How many tensors [`Network::measures`] picks: the layers of a probe record.
    fn measured_count(&self) -> usize
    where
        Self: Sized,
    {
        let mut n = 0;
        self.visit(&mut |t| n += usize::from(t.grad.is_some() && Self::measures(t.name, t.kind)));
        n
    }

    /// Every tensor of the state (parameters and buffers) as `weights.safetensors` stores it:
    /// `(name, shape, values)`, in visiting order. Writing weights and checkpoints goes
    /// through this list (and [`Network::state_mut`]), so a tensor a layer declares is saved
    /// and restored.
    fn state(&self) -> Vec<(String, Vec<usize>, &[F])> {
        let mut out = Vec::new();
        self.visit(&mut |t| out.push((t.name.to_string(), t.shape.dims().to_vec(), t.value)));
        out
    }

    /// [`Network::state`], writable: `(name, values)` in the same order.
    fn state_mut(&mut self) -> Vec<(String, &mut [F])> {
        let mut out = Vec::new();
        self.visit_mut(&mut |t| out.push((t.name.to_string(), t.value)));
        out
    }
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
        let p = Prefix::dotted("norms", 3);
        assert_eq!(p.name("running_var").to_string(), "norms.3.running_var");
        assert_eq!(Prefix::suffix("rnn", 1).name("weight_hh").to_string(), "rnn.weight_hh_l1");
        assert_eq!(Prefix::plain("fc").name("bias").to_string(), "fc.bias");
        assert!(TensorKind::Weight.is_param() && TensorKind::Bias.is_param() && !TensorKind::Buffer.is_param());
        assert!(!TensorKind::Count.is_param());
    }
}
