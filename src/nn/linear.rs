//! The affine layer `y = x·Wᵀ + b`, stored as `torch.nn.Linear` stores it.

use crate::nn::tensor::{Module, Prefix, Shape, TensorKind, TensorMut, TensorRef, data, data_mut};
use crate::nn::{Scalar, Threads, simd};
use ndarray::{Array, Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Dimension};

/// A fully connected layer.
///
/// # Shapes
/// - `weight`: `[fan_out, fan_in]` (PyTorch's `[out_features, in_features]`)
/// - `bias`: `[fan_out]`
/// - input `x`: `[batch, fan_in]`, output `y`: `[batch, fan_out]`
///
/// ```text
/// forward    y     = x·Wᵀ + b
/// backward   ∂L/∂x = ∂L/∂y · W
///            ∂L/∂W += (∂L/∂y)ᵀ · x
///            ∂L/∂b += Σ_rows ∂L/∂y
/// ```
#[derive(Clone, Debug)]
pub struct Linear<F> {
    /// W, `[fan_out, fan_in]`.
    pub weight: Array2<F>,
    /// b, `[fan_out]`.
    pub bias: Array1<F>,
    /// ∂L/∂W, accumulated by [`Linear::backward`].
    pub grad_weight: Array2<F>,
    /// ∂L/∂b, accumulated by [`Linear::backward`].
    pub grad_bias: Array1<F>,
    /// Whether every entry of ∂L/∂W was finite when the last backward's product stored it,
    /// where the product could tell ([`Scalar::gemm_checked`]); see [`Linear::grad_weight_finite`].
    grad_weight_finite: Option<bool>,
}

/// The parameters and their gradients (not what the last product knew of them).
impl<F: PartialEq> PartialEq for Linear<F> {
    fn eq(&self, other: &Self) -> bool {
        self.weight == other.weight
            && self.bias == other.bias
            && self.grad_weight == other.grad_weight
            && self.grad_bias == other.grad_bias
    }
}

impl<F: Scalar> Linear<F> {
    /// A layer with the given parameters and zero gradients.
    ///
    /// **Panics** if `bias.len() != weight.nrows()`.
    pub fn new(weight: Array2<F>, bias: Array1<F>) -> Self {
        assert_eq!(weight.nrows(), bias.len(), "gradscope internal error: bias length must equal fan_out");
        let grad_weight = Array2::zeros(weight.raw_dim());
        let grad_bias = Array1::zeros(bias.raw_dim());
        Self { weight, bias, grad_weight, grad_bias, grad_weight_finite: None }
    }

    /// Whether every entry of ∂L/∂W is finite, as the last backward pass's product saw the
    /// values it stored (no pass over ∂L/∂W: [`crate::nonfinite::Guard`] reads this instead of
    /// scanning); `None` when the product could not tell (f64, faer) or ∂L/∂W has been handed out
    /// mutably since ([`Module::visit_mut`], [`Linear::zero_grad`]). Writing `grad_weight`
    /// through the public field does not reset it: read it right after the backward pass.
    pub fn grad_weight_finite(&self) -> Option<bool> {
        self.grad_weight_finite
    }

    /// Records what a product that wrote ∂L/∂W outside [`Linear::backward_products`] said of
    /// its finiteness (`None`: it could not tell; a reader scans).
    pub(crate) fn set_grad_weight_finite(&mut self, finite: Option<bool>) {
        self.grad_weight_finite = finite;
    }

    /// Number of inputs.
    pub fn fan_in(&self) -> usize {
        self.weight.ncols()
    }

    /// Number of outputs.
    pub fn fan_out(&self) -> usize {
        self.weight.nrows()
    }

    /// y = x·Wᵀ + b.
    pub fn forward(&self, x: ArrayView2<F>, mut y: ArrayViewMut2<F>, threads: Threads) {
        debug_assert_eq!(x.ncols(), self.fan_in());
        debug_assert_eq!(y.dim(), (x.nrows(), self.fan_out()));
        match (y.as_slice_mut(), self.bias.as_slice()) {
            // without an ndarray iterator (or a `memcpy` call) per row (tiny layers: 64 rows of 32)
            (Some(ys), Some(b)) => simd::fill_rows(ys, b),
            _ => y.rows_mut().into_iter().for_each(|mut r| r.assign(&self.bias)),
        }
        F::gemm(y, x, self.weight.t(), true, threads);
    }

    /// Takes the layer's input `x` and ∂L/∂y; adds ∂L/∂W and ∂L/∂b to the gradients and,
    /// when `grad_x` is given, writes ∂L/∂x into it.
    ///
    /// The input is passed back in rather than cached because the network already keeps every
    /// layer's output (the probes read them); a copy here would double the memory traffic.
    pub fn backward(
        &mut self,
        x: ArrayView2<F>,
        grad_y: ArrayView2<F>,
        grad_x: Option<ArrayViewMut2<F>>,
        threads: Threads,
    ) {
        self.backward_into(x, grad_y, grad_x, Grad::Accumulate, threads);
    }

    /// [`Linear::backward`], writing ∂L/∂W and ∂L/∂b instead of adding to them when `mode` is
    /// [`Grad::Write`].
    pub fn backward_into(
        &mut self,
        x: ArrayView2<F>,
        grad_y: ArrayView2<F>,
        grad_x: Option<ArrayViewMut2<F>>,
        mode: Grad,
        threads: Threads,
    ) {
        if mode == Grad::Write {
            zero(&mut self.grad_bias);
        }
        match (grad_y.as_slice(), self.grad_bias.as_slice_mut()) {
            (Some(g), Some(b)) => simd::add_rows(b, g),
            _ => grad_y.axis_iter(Axis(0)).for_each(|row| self.grad_bias += &row),
        }
        self.backward_products(x, grad_y, grad_x, mode, threads);
    }

    /// [`Linear::backward`] without ∂L/∂b, for a caller that has added Σ_rows ∂L/∂y to
    /// `grad_bias` itself while it wrote ∂L/∂y ([`crate::nn::Activation::backward_with_bias`]):
    /// ∂L/∂W += (∂L/∂y)ᵀ·x, or with [`Grad::Write`] ∂L/∂W = (∂L/∂y)ᵀ·x (the product's β = 0: no
    /// zeroing pass before it, no read of ∂L/∂W in its epilogue); and, when `grad_x` is given,
    /// ∂L/∂x = ∂L/∂y·W.
    pub fn backward_products(
        &mut self,
        x: ArrayView2<F>,
        grad_y: ArrayView2<F>,
        grad_x: Option<ArrayViewMut2<F>>,
        mode: Grad,
        threads: Threads,
    ) {
        debug_assert_eq!(grad_y.dim(), (x.nrows(), self.fan_out()));
        let accumulate = mode == Grad::Accumulate;
        self.grad_weight_finite =
            F::gemm_checked(self.grad_weight.view_mut(), grad_y.t(), x, accumulate, threads, true);
        if let Some(grad_x) = grad_x {
            F::gemm(grad_x, grad_y, self.weight.view(), false, threads);
        }
    }

    /// Sets ∂L/∂W and ∂L/∂b to zero.
    pub fn zero_grad(&mut self) {
        self.grad_weight_finite = None;
        zero(&mut self.grad_weight);
        zero(&mut self.grad_bias);
    }
}

/// Whether a backward pass adds to the parameter gradients or writes them.
///
/// `Write` gives the bits of zeroing then accumulating, except that an entry whose sum is an
/// exact zero may keep its sign (−0 stays −0 instead of becoming 0 + (−0) = +0); a parameter
/// used more than once in a step must be written once and accumulated after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grad {
    /// ∂L/∂θ += the pass's gradient (the caller zeroed it first, or accumulates on purpose).
    Accumulate,
    /// ∂L/∂θ = the pass's gradient, whatever it held.
    Write,
}

/// Fills `a` with zeros: one `memset` where it is contiguous (ndarray's `fill` goes element by
/// element).
pub fn zero<F: Scalar, D: Dimension>(a: &mut Array<F, D>) {
    match a.as_slice_memory_order_mut() {
        Some(s) => s.fill(F::zero()),
        None => a.fill(F::zero()),
    }
}

/// `weight` then `bias`, as `torch.nn.Linear`'s state_dict lists them.
impl<F: Scalar> Module<F> for Linear<F> {
    fn visit<'a>(&'a self, p: Prefix, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        let (weight, bias) = (TensorKind::Weight, TensorKind::Bias);
        let ws = Shape::of(self.weight.shape());
        let bs = Shape::of(self.bias.shape());
        f(TensorRef {
            name: p.name("weight"),
            kind: weight,
            shape: ws,
            value: data(&self.weight),
            grad: Some(data(&self.grad_weight)),
        });
        f(TensorRef {
            name: p.name("bias"),
            kind: bias,
            shape: bs,
            value: data(&self.bias),
            grad: Some(data(&self.grad_bias)),
        });
    }

    fn visit_mut<'a>(&'a mut self, p: Prefix, f: &mut dyn FnMut(TensorMut<'a, F>)) {
        let (ws, bs) = (Shape::of(self.weight.shape()), Shape::of(self.bias.shape()));
        let Self { weight, bias, grad_weight, grad_bias, grad_weight_finite } = self;
        *grad_weight_finite = None;
        f(TensorMut {
            name: p.name("weight"),
            kind: TensorKind::Weight,
            shape: ws,
            value: data_mut(weight),
            grad: Some(data_mut(grad_weight)),
        });
        f(TensorMut {
            name: p.name("bias"),
            kind: TensorKind::Bias,
            shape: bs,
            value: data_mut(bias),
            grad: Some(data_mut(grad_bias)),
        });
    }
}
