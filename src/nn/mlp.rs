//! The multilayer perceptron: `depth` hidden layers `h_l = φ(h_{l−1}·W_lᵀ + b_l)` and a linear
//! output layer, with the chain rule written out layer by layer in [`Mlp::backward`].
//!
//! Optionally ([`Arch`]) with the architectural remedies of the vanishing gradient: a
//! normalisation layer in every hidden layer (batch or layer norm, before or after φ) and
//! residual blocks of one or two hidden layers, `h_end = P(h_start−1) + α·F(h_start−1)`, with P
//! the identity or, where the widths differ, a linear projection.
//!
//! The passes go block by block: a hidden layer (`Hidden`: linear → norm/φ in the configured
//! order) and a block's skip path (`Skip`) each own a forward and a backward; a network without
//! residual connections is blocks of one layer without skip path.

use crate::nn::linear::Grad;
use crate::nn::norm::{Norm, NormKind, NormPosition};
use crate::nn::tensor::{Module, Name, Network, Prefix, TensorKind, TensorMut, TensorRef};
use crate::nn::{Activation, Hook, Init, Linear, Loss, Scalar, Targets, Threads, init::gain};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip, s};
use rand::Rng;

mod halves;

/// Residual connections: hidden layers grouped into blocks of `block` layers, input first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Residual {
    /// Hidden layers per block (1 or 2); a shorter last block takes the remainder.
    pub block: usize,
    /// α, the residual branch's scale: `h_end = P(h_start−1) + α·F(h_start−1)`.
    pub scale: f64,
}

/// The remedies built into a network; the default is the plain MLP.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Arch {
    /// Residual blocks, if any.
    pub residual: Option<Residual>,
    /// The normalisation in every hidden layer, if any.
    pub norm: Option<NormKind>,
    /// Where that normalisation sits.
    pub norm_position: NormPosition,
}

impl Arch {
    /// The plain MLP.
    pub fn plain() -> Self {
        Self::default()
    }

    /// True when no remedy is configured.
    pub fn is_plain(&self) -> bool {
        self.residual.is_none() && self.norm.is_none()
    }

    /// The residual block holding hidden layer `l` of `depth`: `(first, last)` hidden layer.
    pub fn block_of(&self, l: usize, depth: usize) -> Option<(usize, usize)> {
        self.residual?;
        blocks(*self, depth).find(|b| (b.first..=b.last).contains(&l)).map(|b| (b.first, b.last))
    }

    /// For `sizes = [inputs, hidden…, outputs]`: per hidden layer, whether a residual block
    /// starts there whose input width differs from its output width (it gets a projection).
    /// Empty without residual connections.
    pub fn shortcut_at(&self, sizes: &[usize]) -> Vec<bool> {
        if self.residual.is_none() {
            return Vec::new();
        }
        let depth = sizes.len().saturating_sub(2);
        let mut out = vec![false; depth];
        for b in blocks(*self, depth) {
            out[b.first] = sizes[b.first] != sizes[b.last + 1];
        }
        out
    }
}

/// The module list of the linear layers: `layers.{l}.weight`, `layers.{l}.bias`.
pub const LAYERS: &str = "layers";
/// The module list of the norm layers, one per hidden layer: `norms.{l}.*`.
pub const NORMS: &str = "norms";
/// The residual projections, by the hidden layer their block starts at: `shortcuts.{l}.*`.
pub const SHORTCUTS: &str = "shortcuts";

/// What builds an [`Mlp`]: the layer sizes, the activation and the initialisation.
///
/// The RNG is passed to [`MlpConfig::init`] so that tests and runs choose the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// `[inputs, hidden_1, …, hidden_depth, outputs]`.
    pub sizes: Vec<usize>,
    /// The hidden activation φ (the output layer is linear).
    pub activation: Activation,
    /// How weights and biases are drawn.
    pub init: Init,
    /// σ_w² for the `gaussian` and `orthogonal` inits.
    pub sigma_w2: f64,
    /// σ_b² for the `gaussian` and `orthogonal` inits.
    pub sigma_b2: f64,
    /// Residual blocks and normalisation (default: none).
    pub arch: Arch,
}

impl MlpConfig {
    /// `depth` hidden layers of `width` units between `inputs` and `outputs`.
    pub fn uniform(
        inputs: usize,
        width: usize,
        depth: usize,
        outputs: usize,
        activation: Activation,
        init: Init,
    ) -> Self {
        let mut sizes = vec![inputs];
        sizes.extend(std::iter::repeat_n(width, depth));
        sizes.push(outputs);
        Self { sizes, activation, init, sigma_w2: 1.0, sigma_b2: 0.0, arch: Arch::plain() }
    }

    /// Draws the parameters, layer by layer from the input, from `rng`; then the residual
    /// projections (gain 1), so that the linear layers are the plain network's for the same
    /// seed. Norm layers start at γ = 1, β = 0.
    pub fn init<F: Scalar, R: Rng + ?Sized>(&self, rng: &mut R) -> Mlp<F> {
        let n = self.sizes.len() - 1;
        let layers = (0..n)
            .map(|l| {
                let g = if l + 1 < n { gain(self.activation) } else { 1.0 };
                let (w, b) = self.init.draw(rng, self.sizes[l], self.sizes[l + 1], g, self.sigma_w2, self.sigma_b2);
                Linear::new(w.mapv(F::of), b.mapv(F::of))
            })
            .collect();
        let shortcuts = self
            .arch
            .shortcut_at(&self.sizes)
            .into_iter()
            .enumerate()
            .map(|(l, at)| {
                at.then(|| {
                    let (fan_in, fan_out) =
                        (self.sizes[l], self.arch.block_of(l, n - 1).map_or(0, |b| self.sizes[b.1 + 1]));
                    let (w, b) = self.init.draw(rng, fan_in, fan_out, 1.0, self.sigma_w2, self.sigma_b2);
                    Linear::new(w.mapv(F::of), b.mapv(F::of))
                })
            })
            .collect();
        let norms = match self.arch.norm {
            Some(kind) => (0..n - 1).map(|l| Norm::new(kind, self.sizes[l + 1])).collect(),
            None => Vec::new(),
        };
        Mlp::with_arch(layers, self.activation, self.arch, norms, shortcuts)
    }
}

/// A multilayer perceptron with the buffers its forward and backward passes reuse.
///
/// Linear layer `l` (0-based, the output layer last) computes the pre-activation
/// `z_l = h_{l−1}·W_lᵀ + b_l` (with `h_{−1} = x`); hidden layers then apply `h_l = φ(z_l)`,
/// the output layer is `ŷ = z_L`. After a forward and a backward pass the network holds
/// every `z_l`, `h_l`, `∂L/∂z_l`, `∂L/∂h_l` and the parameter gradients, which the probes
/// read through [`Mlp::layer_view`]. Buffers grow to the largest batch seen and are then
/// reused: a training step allocates nothing.
#[derive(Clone, Debug)]
pub struct Mlp<F> {
    /// The linear layers, input first, output last.
    pub layers: Vec<Linear<F>>,
    /// The hidden activation φ.
    pub activation: Activation,
    /// Whether [`Mlp::backward`] also computes ∂L/∂x (the input gradient).
    pub want_input_grad: bool,
    /// Residual blocks and normalisation.
    pub arch: Arch,
    /// One norm layer per hidden layer when `arch.norm` is set (else empty).
    pub norms: Vec<Norm<F>>,
    /// Per hidden layer l (when `arch.residual` is set, else empty): the projection of the
    /// residual block that starts at l, where its input and output widths differ.
    pub shortcuts: Vec<Option<Linear<F>>>,
    rows: usize,
    z: Vec<Array2<F>>,
    h: Vec<Array2<F>>,
    dphi: Vec<Array2<F>>,
    grad_z: Vec<Array2<F>>,
    grad_h: Vec<Array2<F>>,
    grad_input: Array2<F>,
    /// Scratch between a norm layer and φ (forward) and their gradients (backward).
    scratch: Array2<F>,
    /// Whether the backward pass adds to the linear layers' gradients or writes them
    /// ([`Mlp::loss_and_grads`] writes them, with no zeroing pass first).
    grad_mode: Grad,
    /// What a two-thread step by halves of the batch keeps between steps ([`halves`]).
    halves: halves::Scratch<F>,
}

/// One layer right after its forward pass, as probes see it.
#[derive(Clone, Debug)]
pub struct ForwardView<'a, F> {
    /// 0-based index of the linear layer; the output layer is last.
    pub index: usize,
    /// φ of this layer (`identity` for the output layer).
    pub activation: Activation,
    /// Pre-activations z_l, `[batch, fan_out]`.
    pub z: ArrayView2<'a, F>,
    /// Outputs h_l = φ(z_l) (ŷ for the output layer).
    pub h: ArrayView2<'a, F>,
    /// φ′(z_l); `None` for the (linear) output layer, where it is 1.
    pub dphi: Option<ArrayView2<'a, F>>,
}

/// One linear layer and what the last forward and backward passes left in it, as probes see it.
#[derive(Clone, Debug)]
pub struct LayerView<'a, F> {
    /// 0-based index of the linear layer; the output layer is last.
    pub index: usize,
    /// φ of this layer (`identity` for the output layer).
    pub activation: Activation,
    /// The layer's parameters and their gradients.
    pub linear: &'a Linear<F>,
    /// Pre-activations z_l, `[batch, fan_out]`.
    pub z: ArrayView2<'a, F>,
    /// Outputs h_l = φ(z_l) (ŷ for the output layer).
    pub h: ArrayView2<'a, F>,
    /// φ′(z_l) as the forward pass computed it; `None` for the (linear) output layer, where it is 1.
    pub dphi: Option<ArrayView2<'a, F>>,
    /// ∂L/∂z_l.
    pub grad_z: ArrayView2<'a, F>,
    /// ∂L/∂h_l (equal to ∂L/∂z_l for the output layer).
    pub grad_h: ArrayView2<'a, F>,
    /// The hidden layer's norm layer (its γ, β and their gradients), if any.
    pub norm: Option<&'a Norm<F>>,
    /// The projection of the residual block starting at this layer, if any.
    pub shortcut: Option<&'a Linear<F>>,
}

/// The tensors of linear layer `l` and what belongs to it, named: `layers.l.*`, then the norm
/// layer `norms.l.*`, then the projection `shortcuts.l.*` (the order of [`Network::visit`];
/// [`Network::visit_mut`] is its writable twin).
fn visit_layer<'a, F: Scalar>(
    l: usize,
    linear: &'a Linear<F>,
    norm: Option<&'a Norm<F>>,
    shortcut: Option<&'a Linear<F>>,
    f: &mut dyn FnMut(TensorRef<'a, F>),
) {
    linear.visit(Prefix::dotted(LAYERS, l), f);
    if let Some(m) = norm {
        m.visit(Prefix::dotted(NORMS, l), f);
    }
    if let Some(p) = shortcut {
        p.visit(Prefix::dotted(SHORTCUTS, l), f);
    }
}

impl<'a, F: Scalar> LayerView<'a, F> {
    /// Calls `f` on this layer's tensors (its linear layer's, its norm layer's, its
    /// projection's), in state order, with their gradients.
    pub fn visit(&self, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        visit_layer(self.index, self.linear, self.norm, self.shortcut, f);
    }

    /// The forward part of the view.
    pub fn forward(&self) -> ForwardView<'a, F> {
        ForwardView { index: self.index, activation: self.activation, z: self.z, h: self.h, dphi: self.dphi }
    }
}

/// A residual block, or one hidden layer of a network without residual connections: hidden
/// layers `first..=last` and, with residual connections, the skip path's α.
#[derive(Clone, Copy, Debug)]
struct Block {
    first: usize,
    last: usize,
    /// α when the block has a skip path (`h_last ← P(h_{first−1}) + α·h_last`).
    skip: Option<f64>,
}

/// The blocks of `depth` hidden layers from the input: `block` layers each (a shorter last one
/// takes the remainder), or one layer each, without skip path, without residual connections.
/// Allocates nothing.
fn blocks(arch: Arch, depth: usize) -> impl DoubleEndedIterator<Item = Block> {
    let (size, skip) = arch.residual.map_or((1, None), |r| (r.block, Some(r.scale)));
    (0..depth).step_by(size).map(move |first| Block { first, last: (first + size).min(depth) - 1, skip })
}

/// Hidden layer l as one layer: its linear layer `layers.{l}`, then φ and the optional norm
/// layer `norms.{l}` in the configured order (`pre`: h = φ(norm(z)), `post`: h = norm(φ(z))).
/// It borrows its parts from the network's lists, which keep the state's names and order.
struct Hidden<'a, F> {
    linear: &'a mut Linear<F>,
    norm: Option<&'a mut Norm<F>>,
    position: NormPosition,
    activation: Activation,
    /// Whether the backward pass adds to the linear layer's gradients or writes them.
    grad: Grad,
}

/// What a hidden layer's forward pass writes: z, h, φ′ (the batch's rows), and the scratch
/// between the norm layer and φ that all layers share.
struct Forward<'b, F> {
    z: ArrayViewMut2<'b, F>,
    h: ArrayViewMut2<'b, F>,
    dphi: ArrayViewMut2<'b, F>,
    scratch: &'b mut Array2<F>,
}

/// What a hidden layer's backward pass reads (its complete ∂L/∂h, φ′) and writes (∂L/∂z, the
/// scratch).
struct Backward<'b, F> {
    grad_h: ArrayView2<'b, F>,
    dphi: ArrayView2<'b, F>,
    grad_z: ArrayViewMut2<'b, F>,
    scratch: &'b mut Array2<F>,
}

impl<F: Scalar> Hidden<'_, F> {
    /// z = x·Wᵀ + b, then (norm) → φ → (norm) into h, with φ′ (at φ's input) into dphi. The
    /// norm layer caches x̂ and 1/√(σ²+ε) itself, so the intermediate is not kept.
    fn forward(&mut self, x: ArrayView2<F>, b: Forward<'_, F>, threads: Threads) {
        let Forward { mut z, h, dphi, scratch } = b;
        self.linear.forward(x, z.view_mut(), threads);
        let (n, w) = z.dim();
        match (self.norm.as_deref_mut(), self.position) {
            (None, _) => self.activation.forward_with_derivative(z.view(), h, dphi),
            (Some(norm), NormPosition::Pre) => {
                norm.forward(z.view(), scratch.slice_mut(s![..n, ..w]));
                self.activation.forward_with_derivative(scratch.slice(s![..n, ..w]), h, dphi);
            }
            (Some(norm), NormPosition::Post) => {
                self.activation.forward_with_derivative(z.view(), scratch.slice_mut(s![..n, ..w]), dphi);
                norm.forward(scratch.slice(s![..n, ..w]), h);
            }
        }
    }

    /// From the complete ∂L/∂h scaled by `alpha` (a residual branch's α, else 1): ∂L/∂z
    /// through the norm layer (adding to γ's and β's gradients) and φ, then the linear layer's
    /// backward (∂L/∂W, ∂L/∂b added; ∂L/∂x written into `grad_x`, when given).
    fn backward(
        &mut self,
        x: ArrayView2<F>,
        b: Backward<'_, F>,
        alpha: f64,
        grad_x: Option<ArrayViewMut2<F>>,
        threads: Threads,
    ) {
        let Backward { grad_h: gh, dphi, mut grad_z, scratch } = b;
        let (n, w) = grad_z.dim();
        let a = F::of(alpha);
        match (self.norm.as_deref_mut(), self.position) {
            (None, _) if alpha == 1.0 => {
                // ∂L/∂z and ∂L/∂b in one pass over the rows, then the linear layer's products
                if self.grad == Grad::Write {
                    crate::nn::linear::zero(&mut self.linear.grad_bias);
                }
                let grad_bias = self.linear.grad_bias.as_slice_mut().expect("gradscope internal error: bias layout");
                self.activation.backward_with_bias(dphi, gh, grad_z.view_mut(), grad_bias);
                return self.linear.backward_products(x, grad_z.view(), grad_x, self.grad, threads);
            }
            (None, _) => {
                self.activation.backward(dphi, gh, grad_z.view_mut());
                if alpha != 1.0 {
                    grad_z.mapv_inplace(|v| a * v);
                }
            }
            (Some(norm), NormPosition::Pre) => {
                let mut gu = scratch.slice_mut(s![..n, ..w]);
                self.activation.backward(dphi, gh, gu.view_mut());
                norm.backward(gu.view(), a, grad_z.view_mut());
            }
            (Some(norm), NormPosition::Post) => {
                norm.backward(gh, a, grad_z.view_mut());
                Zip::from(&mut grad_z).and(dphi).for_each(|g, &d| *g *= d);
            }
        }
        self.linear.backward_into(x, grad_z.view(), grad_x, self.grad, threads);
    }
}

/// A residual block's skip path: P, the identity or (where the block's input and output widths
/// differ) the projection `shortcuts.{first}`, and the branch's scale α.
struct Skip<'a, F> {
    scale: f64,
    projection: Option<&'a mut Linear<F>>,
}

impl<F: Scalar> Skip<'_, F> {
    /// `out ← P(block_in) + α·out` in place, `out` holding the branch's output F(block_in).
    fn forward(&self, block_in: ArrayView2<F>, mut out: ArrayViewMut2<F>, threads: Threads) {
        if self.scale != 1.0 {
            let a = F::of(self.scale);
            out.mapv_inplace(|v| a * v);
        }
        match self.projection.as_deref() {
            Some(p) => {
                for mut row in out.rows_mut() {
                    row += &p.bias;
                }
                F::gemm(out, block_in, p.weight.t(), true, threads);
            }
            None => out += &block_in,
        }
    }

    /// The skip path's backward: adds Pᵀ applied to ∂L/∂h_out (`grad_out`) to ∂L/∂h_in
    /// (`grad_in`, which the branch's backward has written), accumulating P's gradients.
    fn backward(
        &mut self,
        block_in: ArrayView2<F>,
        grad_out: ArrayView2<F>,
        grad_in: Option<ArrayViewMut2<F>>,
        threads: Threads,
    ) {
        match self.projection.as_deref_mut() {
            Some(p) => {
                F::gemm(p.grad_weight.view_mut(), grad_out.t(), block_in, true, threads);
                for row in grad_out.rows() {
                    p.grad_bias += &row;
                }
                if let Some(t) = grad_in {
                    F::gemm(t, grad_out, p.weight.view(), true, threads);
                }
            }
            None => {
                if let Some(mut t) = grad_in {
                    t += &grad_out;
                }
            }
        }
    }
}

/// The first `n` rows of `a`: the whole array's view when it has `n` rows (every step of a
/// full batch), without ndarray's general slicing, which took 5–8 % of a `tiny` step (a few
/// dozen slices per layer and step at ≈ 50 ns each, `perf record`, session 9).
#[inline]
fn rows<F>(a: &Array2<F>, n: usize) -> ArrayView2<'_, F> {
    if a.nrows() == n { a.view() } else { a.slice(s![..n, ..]) }
}

/// [`rows`], writable.
#[inline]
fn rows_mut<F>(a: &mut Array2<F>, n: usize) -> ArrayViewMut2<'_, F> {
    if a.nrows() == n { a.view_mut() } else { a.slice_mut(s![..n, ..]) }
}

/// Where linear layer `l`'s backward writes ∂L/∂x: ∂L/∂h_{l−1}, or for the first layer the
/// network's input gradient when it is wanted.
fn grad_in<'s, F: Scalar>(
    grad_h: &'s mut [Array2<F>],
    grad_input: &'s mut Array2<F>,
    want_input_grad: bool,
    l: usize,
    n: usize,
) -> Option<ArrayViewMut2<'s, F>> {
    if l > 0 {
        Some(rows_mut(&mut grad_h[l - 1], n))
    } else if want_input_grad {
        Some(rows_mut(grad_input, n))
    } else {
        None
    }
}

impl<F: Scalar> Mlp<F> {
    /// Wraps layers whose sizes chain (`layers[l].fan_out == layers[l + 1].fan_in`).
    ///
    /// **Panics** on an empty list or sizes that do not chain; callers validate user input first.
    pub fn new(layers: Vec<Linear<F>>, activation: Activation) -> Self {
        Self::with_arch(layers, activation, Arch::plain(), Vec::new(), Vec::new())
    }

    /// [`Mlp::new`] with remedies: `norms` one per hidden layer when `arch.norm` is set,
    /// `shortcuts` one entry per hidden layer when `arch.residual` is set (a projection exactly
    /// where [`Arch::shortcut_at`] says).
    ///
    /// **Panics** when the parts do not fit together; callers validate user input first.
    pub fn with_arch(
        layers: Vec<Linear<F>>,
        activation: Activation,
        arch: Arch,
        norms: Vec<Norm<F>>,
        shortcuts: Vec<Option<Linear<F>>>,
    ) -> Self {
        assert!(!layers.is_empty(), "gradscope internal error: an MLP needs at least one layer");
        for pair in layers.windows(2) {
            assert_eq!(pair[0].fan_out(), pair[1].fan_in(), "gradscope internal error: layer sizes do not chain");
        }
        let depth = layers.len() - 1;
        let sizes: Vec<usize> = std::iter::once(layers[0].fan_in()).chain(layers.iter().map(Linear::fan_out)).collect();
        match arch.norm {
            Some(kind) => {
                assert_eq!(norms.len(), depth, "gradscope internal error: one norm per hidden layer");
                for (l, n) in norms.iter().enumerate() {
                    assert!(n.kind == kind && n.features() == sizes[l + 1], "gradscope internal error: norm {l}");
                }
            }
            None => assert!(norms.is_empty(), "gradscope internal error: norms without arch.norm"),
        }
        if let Some(r) = arch.residual {
            assert!(r.block >= 1, "gradscope internal error: empty residual block");
            assert_eq!(shortcuts.len(), depth, "gradscope internal error: one shortcut slot per hidden layer");
            for (l, (p, want)) in shortcuts.iter().zip(arch.shortcut_at(&sizes)).enumerate() {
                assert_eq!(p.is_some(), want, "gradscope internal error: shortcut {l}");
                if let (Some(p), Some((s, e))) = (p, arch.block_of(l, depth)) {
                    assert!(
                        p.fan_in() == sizes[s] && p.fan_out() == sizes[e + 1],
                        "gradscope internal error: shortcut {l}"
                    );
                }
            }
        } else {
            assert!(shortcuts.is_empty(), "gradscope internal error: shortcuts without arch.residual");
        }
        let mut mlp = Self {
            layers,
            activation,
            want_input_grad: false,
            arch,
            norms,
            shortcuts,
            rows: 0,
            z: Vec::new(),
            h: Vec::new(),
            dphi: Vec::new(),
            grad_z: Vec::new(),
            grad_h: Vec::new(),
            grad_input: Array2::zeros((0, 0)),
            scratch: Array2::zeros((0, 0)),
            grad_mode: Grad::Accumulate,
            halves: halves::Scratch::default(),
        };
        mlp.reserve(0);
        mlp
    }

    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.layers[0].fan_in()
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].fan_out()
    }

    /// Number of hidden layers.
    pub fn depth(&self) -> usize {
        self.layers.len() - 1
    }

    /// `[inputs, hidden…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.inputs()).chain(self.layers.iter().map(Linear::fan_out)).collect()
    }

    /// Makes the buffers hold at least `rows` examples (allocates only when they grow).
    pub fn reserve(&mut self, rows: usize) {
        let cap = self.z.first().map_or(usize::MAX, |z| z.nrows());
        if cap != usize::MAX && cap >= rows {
            return;
        }
        let n = self.layers.len();
        let buf = |l: usize| Array2::<F>::zeros((rows, self.layers[l].fan_out()));
        self.z = (0..n).map(buf).collect();
        self.grad_z = (0..n).map(buf).collect();
        self.h = (0..n - 1).map(buf).collect();
        self.dphi = (0..n - 1).map(buf).collect();
        self.grad_h = (0..n - 1).map(buf).collect();
        self.grad_input = Array2::zeros((rows, self.inputs()));
        if !self.norms.is_empty() {
            let widest = self.layers[..n - 1].iter().map(Linear::fan_out).max().unwrap_or(0);
            self.scratch = Array2::zeros((rows, widest));
            self.norms.iter_mut().for_each(|m| m.reserve(rows));
        }
    }

    /// Training mode (batch norm uses batch statistics and updates its running estimates) or
    /// eval mode (running estimates), as `module.train()` / `module.eval()`; layer norm and the
    /// plain network are the same in both.
    pub fn set_training(&mut self, training: bool) {
        self.norms.iter_mut().for_each(|n| n.training = training);
    }

    /// Whether the network is in training mode (true without norm layers).
    pub fn is_training(&self) -> bool {
        self.norms.first().is_none_or(|n| n.training)
    }

    /// Whether training-mode forward passes update batch norm's running estimates (on by
    /// default; a probe outside the training steps turns it off so that it changes nothing).
    pub fn set_track_running_stats(&mut self, on: bool) {
        self.norms.iter_mut().for_each(|n| n.track_running_stats = on);
    }

    /// True when a training-mode forward pass needs more than one row (batch norm).
    pub fn needs_batch_stats(&self) -> bool {
        self.arch.norm == Some(NormKind::Batch) && self.is_training()
    }

    /// Runs the network on a batch `x` (`[batch, inputs]`) and returns ŷ (`[batch, outputs]`).
    pub fn forward(&mut self, x: ArrayView2<F>, threads: Threads) -> ArrayView2<'_, F> {
        self.forward_probed(x, threads, None)
    }

    /// [`Mlp::forward`], calling `probe` after each layer (after the whole pass, layer by layer,
    /// when a two-thread step goes by halves of the batch).
    pub fn forward_probed<'p>(
        &mut self,
        x: ArrayView2<F>,
        threads: Threads,
        mut probe: Option<&mut (dyn Hook<F> + 'p)>,
    ) -> ArrayView2<'_, F> {
        let n = x.nrows();
        debug_assert_eq!(x.ncols(), self.inputs());
        self.reserve(n);
        self.rows = n;
        let (arch, last) = (self.arch, self.layers.len() - 1);
        if halves::applies(self, n, threads) {
            halves::forward(self, x);
            if let Some(p) = probe {
                self.call_forward_hooks(p);
            }
            return rows(&self.z[last], n);
        }
        for block in blocks(arch, last) {
            self.block_forward(block, x, threads, &mut probe);
        }
        let input = if last == 0 { x } else { rows(&self.h[last - 1], n) };
        self.layers[last].forward(input, rows_mut(&mut self.z[last], n), threads);
        if let Some(p) = probe {
            p.after_layer_forward(&self.layer_view(last).forward());
        }
        rows(&self.z[last], n)
    }

    /// ŷ of the last forward pass.
    pub fn output(&self) -> ArrayView2<'_, F> {
        self.z[self.layers.len() - 1].slice(s![..self.rows, ..])
    }

    /// Computes the loss of the last forward pass and writes ∂L/∂ŷ, ready for [`Mlp::backward`].
    pub fn loss_grad(&mut self, target: Targets<F>, loss: Loss) -> f64 {
        let (n, last) = (self.rows, self.layers.len() - 1);
        let out = rows(&self.z[last], n);
        loss.forward_backward(out, target, rows_mut(&mut self.grad_z[last], n))
    }

    /// ∂L/∂ŷ, for callers that supply their own upstream gradient before [`Mlp::backward`].
    pub fn grad_output_mut(&mut self) -> ArrayViewMut2<'_, F> {
        let (n, last) = (self.rows, self.layers.len() - 1);
        rows_mut(&mut self.grad_z[last], n)
    }

    /// Backpropagates ∂L/∂ŷ through every layer, from the output to the input: one
    /// `∂L/∂z_l = ∂L/∂h_l ⊙ φ′(z_l)` factor and one `∂L/∂h_{l−1} = ∂L/∂z_l·W_l` product per
    /// layer. Adds to the parameter gradients (call [`Mlp::zero_grad`] first to start afresh).
    ///
    /// `x` must be the input of the preceding forward pass.
    pub fn backward(&mut self, x: ArrayView2<F>, threads: Threads) {
        self.backward_probed(x, threads, None);
    }

    /// [`Mlp::backward`], calling `probe` as soon as each layer's gradients are complete (after
    /// the whole pass, layer by layer from the output, when the step goes by halves of the batch).
    pub fn backward_probed<'p>(
        &mut self,
        x: ArrayView2<F>,
        threads: Threads,
        mut probe: Option<&mut (dyn Hook<F> + 'p)>,
    ) {
        let n = self.rows;
        debug_assert_eq!(x.nrows(), n, "backward needs the forward pass's input");
        let (arch, last) = (self.arch, self.layers.len() - 1);
        if halves::applies(self, n, threads) {
            halves::backward(self, x);
            if let Some(p) = probe {
                self.call_backward_hooks(p);
            }
            return;
        }
        let input = if last == 0 { x } else { rows(&self.h[last - 1], n) };
        let grad_x = grad_in(&mut self.grad_h, &mut self.grad_input, self.want_input_grad, last, n);
        self.layers[last].backward_into(input, rows(&self.grad_z[last], n), grad_x, self.grad_mode, threads);
        if let Some(p) = probe.as_deref_mut() {
            p.after_layer_backward(&self.layer_view(last));
        }
        for block in blocks(arch, last).rev() {
            self.block_backward(block, x, threads, &mut probe);
        }
    }

    /// ∂L/∂x of the last backward pass (needs `want_input_grad`).
    pub fn grad_input(&self) -> ArrayView2<'_, F> {
        self.grad_input.slice(s![..self.rows, ..])
    }

    /// Zeroes every parameter gradient.
    pub fn zero_grad(&mut self) {
        self.layers.iter_mut().for_each(Linear::zero_grad);
        self.norms.iter_mut().for_each(Norm::zero_grad);
        self.shortcuts.iter_mut().flatten().for_each(Linear::zero_grad);
    }

    /// Residual block `b` (or one hidden layer of a network without residual connections)
    /// forward: each of its hidden layers in turn, the skip path added at its last layer
    /// (`h_last ← P(h_{first−1}) + α·h_last`), the hook after each layer.
    fn block_forward(
        &mut self,
        b: Block,
        x: ArrayView2<F>,
        threads: Threads,
        probe: &mut Option<&mut (dyn Hook<F> + '_)>,
    ) {
        let n = self.rows;
        for l in b.first..=b.last {
            let (before, rest) = self.h.split_at_mut(l);
            let input = if l == 0 { x } else { rows(&before[l - 1], n) };
            let bufs = Forward {
                z: rows_mut(&mut self.z[l], n),
                h: rows_mut(&mut rest[0], n),
                dphi: rows_mut(&mut self.dphi[l], n),
                scratch: &mut self.scratch,
            };
            let norm = self.norms.get_mut(l);
            let (position, activation) = (self.arch.norm_position, self.activation);
            let grad = self.grad_mode;
            Hidden { linear: &mut self.layers[l], norm, position, activation, grad }.forward(input, bufs, threads);
            if let (true, Some(scale)) = (l == b.last, b.skip) {
                let block_in = if b.first == 0 { x } else { rows(&before[b.first - 1], n) };
                let skip = Skip { scale, projection: self.shortcuts[b.first].as_mut() };
                skip.forward(block_in, rows_mut(&mut rest[0], n), threads);
            }
            if let Some(p) = probe.as_deref_mut() {
                p.after_layer_forward(&self.layer_view(l).forward());
            }
        }
    }

    /// Residual block `b` backward, from its last layer to its first, once ∂L/∂h_last is
    /// complete: the branch gets α·∂L/∂h_last (α folded into φ′'s product or the norm's
    /// backward); after the first layer's linear backward wrote ∂L/∂h_{first−1}, the skip path
    /// adds its share. The hook is called once each layer's gradients are final.
    fn block_backward(
        &mut self,
        b: Block,
        x: ArrayView2<F>,
        threads: Threads,
        probe: &mut Option<&mut (dyn Hook<F> + '_)>,
    ) {
        let n = self.rows;
        for l in (b.first..=b.last).rev() {
            let alpha = if l == b.last { b.skip.unwrap_or(1.0) } else { 1.0 };
            let input = if l == 0 { x } else { rows(&self.h[l - 1], n) };
            let (before, rest) = self.grad_h.split_at_mut(l);
            let bufs = Backward {
                grad_h: rows(&rest[0], n),
                dphi: rows(&self.dphi[l], n),
                grad_z: rows_mut(&mut self.grad_z[l], n),
                scratch: &mut self.scratch,
            };
            let grad_x = grad_in(before, &mut self.grad_input, self.want_input_grad, l, n);
            let norm = self.norms.get_mut(l);
            let (position, activation) = (self.arch.norm_position, self.activation);
            let grad = self.grad_mode;
            Hidden { linear: &mut self.layers[l], norm, position, activation, grad }
                .backward(input, bufs, alpha, grad_x, threads);
            if let (true, Some(scale)) = (l == b.first, b.skip) {
                let grad_out = rows(&rest[b.last - l], n);
                let grad_x = grad_in(before, &mut self.grad_input, self.want_input_grad, l, n);
                let mut skip = Skip { scale, projection: self.shortcuts[l].as_mut() };
                skip.backward(input, grad_out, grad_x, threads);
            }
            // layer l's ∂L/∂z, ∂L/∂h (from the layer above and any skip path) and its
            // parameters' gradients are now final
            if let Some(p) = probe.as_deref_mut() {
                p.after_layer_backward(&self.layer_view(l));
            }
        }
    }

    /// Forward, loss and backward on one batch with fresh gradients; returns the loss.
    pub fn loss_and_grads(&mut self, x: ArrayView2<F>, target: Targets<F>, loss: Loss, threads: Threads) -> f64 {
        self.loss_and_grads_probed(x, target, loss, threads, None)
    }

    /// [`Mlp::loss_and_grads`] with a probe called per layer inside both passes.
    pub fn loss_and_grads_probed<'p>(
        &mut self,
        x: ArrayView2<F>,
        target: Targets<F>,
        loss: Loss,
        threads: Threads,
        mut probe: Option<&mut (dyn Hook<F> + 'p)>,
    ) -> f64 {
        // the linear layers' backward passes write their gradients (no zeroing pass over them)
        self.norms.iter_mut().for_each(Norm::zero_grad);
        self.shortcuts.iter_mut().flatten().for_each(Linear::zero_grad);
        let n = x.nrows();
        if halves::applies(self, n, threads) {
            // both passes and the loss gradient in one join; the hooks see every layer after it,
            // forward then backward, as after two joins
            debug_assert_eq!(x.ncols(), self.inputs());
            self.reserve(n);
            self.rows = n;
            self.grad_mode = Grad::Write;
            let value = halves::step(self, x, target, loss);
            self.grad_mode = Grad::Accumulate;
            if let Some(p) = probe {
                self.call_forward_hooks(&mut *p);
                self.call_backward_hooks(p);
            }
            return value;
        }
        self.forward_probed(x, threads, probe.as_deref_mut());
        let value = self.loss_grad(target, loss);
        self.grad_mode = Grad::Write;
        self.backward_probed(x, threads, probe);
        self.grad_mode = Grad::Accumulate;
        value
    }

    /// The hook's [`Hook::after_forward_pass`] on what the last pass left (every layer's forward view).
    fn call_forward_hooks(&self, p: &mut (dyn Hook<F> + '_)) {
        p.after_forward_pass(self.layers.len(), &|l| self.layer_view(l).forward());
    }

    /// The hook's [`Hook::after_backward_pass`] on what the last pass left (every layer's view).
    fn call_backward_hooks(&self, p: &mut (dyn Hook<F> + '_)) {
        p.after_backward_pass(self.layers.len(), &|l| self.layer_view(l));
    }

    /// Number of linear layers (`depth + 1`).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// What the last passes left in linear layer `l`.
    pub fn layer_view(&self, l: usize) -> LayerView<'_, F> {
        let n = self.rows;
        let last = self.layers.len() - 1;
        let z = rows(&self.z[l], n);
        let grad_z = rows(&self.grad_z[l], n);
        let (activation, h, dphi, grad_h) = if l < last {
            (self.activation, rows(&self.h[l], n), Some(rows(&self.dphi[l], n)), rows(&self.grad_h[l], n))
        } else {
            (Activation::Identity, z, None, grad_z)
        };
        let norm = self.norms.get(l);
        let shortcut = self.shortcuts.get(l).and_then(Option::as_ref);
        LayerView { index: l, activation, linear: &self.layers[l], z, h, dphi, grad_z, grad_h, norm, shortcut }
    }

    /// The same network in another float type (e.g. f32 weights checked in f64): the same
    /// layers and modes, every tensor of [`Network::visit`] converted.
    pub fn cast<G: Scalar>(&self) -> Mlp<G> {
        let zeros = |l: &Linear<F>| Linear::new(Array2::zeros(l.weight.raw_dim()), Array1::zeros(l.bias.raw_dim()));
        let layers = self.layers.iter().map(zeros).collect();
        let norms = self
            .norms
            .iter()
            .map(|n| {
                let mut m = Norm::new(n.kind, n.features());
                (m.training, m.track_running_stats) = (n.training, n.track_running_stats);
                m
            })
            .collect();
        let shortcuts = self.shortcuts.iter().map(|p| p.as_ref().map(zeros)).collect();
        let mut m = Mlp::with_arch(layers, self.activation, self.arch, norms, shortcuts);
        m.want_input_grad = self.want_input_grad;
        let mut from = self.tensors().into_iter();
        m.visit_mut(&mut |t| {
            let src = from.next().expect("gradscope internal error: cast visits the same tensors");
            debug_assert_eq!(src.name, t.name);
            for (d, &s) in t.value.iter_mut().zip(src.value) {
                *d = G::of(s.f64());
            }
        });
        m
    }
}

/// The MLP's tensors: see [`Network`] for what derives from them.
impl<F: Scalar> Network<F> for Mlp<F> {
    /// Calls `f` on every tensor of the network, in state order: per linear layer l,
    /// `layers.l.{weight, bias}`, then `norms.l.*` (γ, β and, for batch norm, the running
    /// estimates and count), then `shortcuts.l.{weight, bias}`. The one place where the
    /// network's layers are named; every list of tensors derives from it. Allocates nothing.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        for (l, layer) in self.layers.iter().enumerate() {
            let shortcut = self.shortcuts.get(l).and_then(Option::as_ref);
            visit_layer(l, layer, self.norms.get(l), shortcut, f);
        }
    }

    /// [`Network::visit`], writable, in the same order.
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(TensorMut<'a, F>)) {
        let (mut norms, mut shortcuts) = (self.norms.iter_mut(), self.shortcuts.iter_mut());
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let (norm, shortcut) = (norms.next(), shortcuts.next().and_then(Option::as_mut));
            layer.visit_mut(Prefix::dotted(LAYERS, l), f);
            if let Some(m) = norm {
                m.visit_mut(Prefix::dotted(NORMS, l), f);
            }
            if let Some(p) = shortcut {
                p.visit_mut(Prefix::dotted(SHORTCUTS, l), f);
            }
        }
    }

    /// One per linear layer: `layers.{l}.weight`.
    fn measures(name: Name, kind: TensorKind) -> bool {
        name.group == LAYERS && kind == TensorKind::Weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocks the passes iterate are the ones `block_of` and `shortcut_at` describe: `block`
    /// layers from the input, the remainder last; one layer each, without skip, when plain.
    #[test]
    fn blocks_cover_the_hidden_layers_once_in_order() {
        let arch = Arch { residual: Some(Residual { block: 2, scale: 0.5 }), ..Arch::plain() };
        let got: Vec<_> = blocks(arch, 5).map(|b| (b.first, b.last, b.skip)).collect();
        assert_eq!(got, [(0, 1, Some(0.5)), (2, 3, Some(0.5)), (4, 4, Some(0.5))]);
        assert_eq!(arch.block_of(3, 5), Some((2, 3)));
        assert_eq!(arch.block_of(4, 5), Some((4, 4)));
        assert_eq!(arch.block_of(5, 5), None);
        assert_eq!(arch.shortcut_at(&[3, 8, 8, 8, 8, 8, 2]), [true, false, false, false, false]);
        let plain: Vec<_> = blocks(Arch::plain(), 3).map(|b| (b.first, b.last, b.skip)).collect();
        assert_eq!(plain, [(0, 0, None), (1, 1, None), (2, 2, None)]);
        assert_eq!(Arch::plain().block_of(1, 3), None);
    }

    /// `loss_and_grads` writes the linear layers' gradients (no zeroing pass): whatever they held
    /// before, the result equals zero_grad + forward + backward (which accumulates), as numbers
    /// (an exact zero may keep its sign), and a second call does not add to the first.
    #[test]
    fn written_gradients_equal_zeroed_then_accumulated_ones() {
        use crate::nn::{Init, Loss, Targets};
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let cfg = MlpConfig::uniform(5, 16, 3, 2, Activation::Relu, Init::Pytorch);
        let mut mlp: Mlp<f64> = cfg.init(&mut rng);
        let x = Array2::from_shape_fn((9, 5), |(r, c)| ((r * 5 + c) as f64 * 0.7).sin());
        let y = Array2::from_shape_fn((9, 2), |(r, c)| ((r + 3 * c) as f64 * 0.3).cos());
        let grads = |m: &Mlp<f64>| -> Vec<f64> {
            m.layers
                .iter()
                .flat_map(|l| l.grad_weight.iter().chain(&l.grad_bias).copied().collect::<Vec<_>>())
                .collect()
        };
        mlp.zero_grad();
        mlp.forward(x.view(), Threads::One);
        mlp.loss_grad(Targets::Values(y.view()), Loss::Mse);
        mlp.backward(x.view(), Threads::One);
        let want = grads(&mlp);
        assert!(want.iter().any(|&g| g != 0.0));
        mlp.layers.iter_mut().for_each(|l| l.grad_weight.fill(f64::NAN));
        for _ in 0..2 {
            mlp.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One);
            assert_eq!(grads(&mlp), want);
        }
        // backward alone still accumulates
        mlp.backward(x.view(), Threads::One);
        assert!(grads(&mlp).iter().zip(&want).all(|(g, w)| (g - 2.0 * w).abs() <= 1e-12 * w.abs().max(1.0)));
    }
}
