//! The multilayer perceptron: `depth` hidden layers `h_l = φ(h_{l−1}·W_lᵀ + b_l)` and a linear
//! output layer, with the chain rule written out layer by layer in [`Mlp::backward`].

use crate::nn::{Activation, Init, Linear, Loss, Scalar, Targets, Threads, init::gain};
use crate::probe::Probe;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use rand::Rng;

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
        Self { sizes, activation, init, sigma_w2: 1.0, sigma_b2: 0.0 }
    }

    /// Draws the parameters, layer by layer from the input, from `rng`.
    pub fn init<F: Scalar, R: Rng + ?Sized>(&self, rng: &mut R) -> Mlp<F> {
        let n = self.sizes.len() - 1;
        let layers = (0..n)
            .map(|l| {
                let g = if l + 1 < n { gain(self.activation) } else { 1.0 };
                let (w, b) = self.init.draw(rng, self.sizes[l], self.sizes[l + 1], g, self.sigma_w2, self.sigma_b2);
                Linear::new(w.mapv(F::of), b.mapv(F::of))
            })
            .collect();
        Mlp::new(layers, self.activation)
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
    rows: usize,
    z: Vec<Array2<F>>,
    h: Vec<Array2<F>>,
    dphi: Vec<Array2<F>>,
    grad_z: Vec<Array2<F>>,
    grad_h: Vec<Array2<F>>,
    grad_input: Array2<F>,
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
}

impl<'a, F: Scalar> LayerView<'a, F> {
    /// The forward part of the view.
    pub fn forward(&self) -> ForwardView<'a, F> {
        ForwardView { index: self.index, activation: self.activation, z: self.z, h: self.h, dphi: self.dphi }
    }
}

impl<F: Scalar> Mlp<F> {
    /// Wraps layers whose sizes chain (`layers[l].fan_out == layers[l + 1].fan_in`).
    ///
    /// **Panics** on an empty list or sizes that do not chain; callers validate user input first.
    pub fn new(layers: Vec<Linear<F>>, activation: Activation) -> Self {
        assert!(!layers.is_empty(), "gradscope internal error: an MLP needs at least one layer");
        for pair in layers.windows(2) {
            assert_eq!(pair[0].fan_out(), pair[1].fan_in(), "gradscope internal error: layer sizes do not chain");
        }
        let mut mlp = Self {
            layers,
            activation,
            want_input_grad: false,
            rows: 0,
            z: Vec::new(),
            h: Vec::new(),
            dphi: Vec::new(),
            grad_z: Vec::new(),
            grad_h: Vec::new(),
            grad_input: Array2::zeros((0, 0)),
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
    }

    /// Runs the network on a batch `x` (`[batch, inputs]`) and returns ŷ (`[batch, outputs]`).
    pub fn forward(&mut self, x: ArrayView2<F>, threads: Threads) -> ArrayView2<'_, F> {
        self.forward_probed(x, threads, None)
    }

    /// [`Mlp::forward`], calling `probe` after each layer.
    pub fn forward_probed<'p>(
        &mut self,
        x: ArrayView2<F>,
        threads: Threads,
        mut probe: Option<&mut (dyn Probe<F> + 'p)>,
    ) -> ArrayView2<'_, F> {
        let n = x.nrows();
        debug_assert_eq!(x.ncols(), self.inputs());
        self.reserve(n);
        self.rows = n;
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let input = if l == 0 { x } else { self.h[l - 1].slice(s![..n, ..]) };
            layer.forward(input, self.z[l].slice_mut(s![..n, ..]), threads);
            if l < last {
                self.activation.forward_with_derivative(
                    self.z[l].slice(s![..n, ..]),
                    self.h[l].slice_mut(s![..n, ..]),
                    self.dphi[l].slice_mut(s![..n, ..]),
                );
            }
            if let Some(p) = probe.as_deref_mut() {
                p.after_layer_forward(&self.layer_view(l).forward());
            }
        }
        self.z[last].slice(s![..n, ..])
    }

    /// ŷ of the last forward pass.
    pub fn output(&self) -> ArrayView2<'_, F> {
        self.z[self.layers.len() - 1].slice(s![..self.rows, ..])
    }

    /// Computes the loss of the last forward pass and writes ∂L/∂ŷ, ready for [`Mlp::backward`].
    pub fn loss_grad(&mut self, target: Targets<F>, loss: Loss) -> f64 {
        let (n, last) = (self.rows, self.layers.len() - 1);
        let out = self.z[last].slice(s![..n, ..]);
        loss.forward_backward(out, target, self.grad_z[last].slice_mut(s![..n, ..]))
    }

    /// ∂L/∂ŷ, for callers that supply their own upstream gradient before [`Mlp::backward`].
    pub fn grad_output_mut(&mut self) -> ArrayViewMut2<'_, F> {
        let (n, last) = (self.rows, self.layers.len() - 1);
        self.grad_z[last].slice_mut(s![..n, ..])
    }

    /// Backpropagates ∂L/∂ŷ through every layer, from the output to the input: one
    /// `∂L/∂z_l = ∂L/∂h_l ⊙ φ′(z_l)` factor and one `∂L/∂h_{l−1} = ∂L/∂z_l·W_l` product per
    /// layer. Adds to the parameter gradients (call [`Mlp::zero_grad`] first to start afresh).
    ///
    /// `x` must be the input of the preceding forward pass.
    pub fn backward(&mut self, x: ArrayView2<F>, threads: Threads) {
        self.backward_probed(x, threads, None);
    }

    /// [`Mlp::backward`], calling `probe` as soon as each layer's gradients are complete.
    pub fn backward_probed<'p>(
        &mut self,
        x: ArrayView2<F>,
        threads: Threads,
        mut probe: Option<&mut (dyn Probe<F> + 'p)>,
    ) {
        let n = self.rows;
        debug_assert_eq!(x.nrows(), n, "backward needs the forward pass's input");
        for l in (0..self.layers.len()).rev() {
            let input = if l == 0 { x } else { self.h[l - 1].slice(s![..n, ..]) };
            let grad_x = if l > 0 {
                Some(self.grad_h[l - 1].slice_mut(s![..n, ..]))
            } else if self.want_input_grad {
                Some(self.grad_input.slice_mut(s![..n, ..]))
            } else {
                None
            };
            self.layers[l].backward(input, self.grad_z[l].slice(s![..n, ..]), grad_x, threads);
            if l > 0 {
                self.activation.backward(
                    self.dphi[l - 1].slice(s![..n, ..]),
                    self.grad_h[l - 1].slice(s![..n, ..]),
                    self.grad_z[l - 1].slice_mut(s![..n, ..]),
                );
            }
            // layer l's ∂L/∂z, ∂L/∂h (from the layer above) and ∂L/∂W, ∂L/∂b are now final
            if let Some(p) = probe.as_deref_mut() {
                p.after_layer_backward(&self.layer_view(l));
            }
        }
    }

    /// ∂L/∂x of the last backward pass (needs `want_input_grad`).
    pub fn grad_input(&self) -> ArrayView2<'_, F> {
        self.grad_input.slice(s![..self.rows, ..])
    }

    /// Zeroes every parameter gradient.
    pub fn zero_grad(&mut self) {
        self.layers.iter_mut().for_each(Linear::zero_grad);
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
        mut probe: Option<&mut (dyn Probe<F> + 'p)>,
    ) -> f64 {
        self.zero_grad();
        self.forward_probed(x, threads, probe.as_deref_mut());
        let value = self.loss_grad(target, loss);
        self.backward_probed(x, threads, probe);
        value
    }

    /// Number of linear layers (`depth + 1`).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// What the last passes left in linear layer `l`.
    pub fn layer_view(&self, l: usize) -> LayerView<'_, F> {
        let n = self.rows;
        let last = self.layers.len() - 1;
        let z = self.z[l].slice(s![..n, ..]);
        let grad_z = self.grad_z[l].slice(s![..n, ..]);
        let (activation, h, dphi, grad_h) = if l < last {
            (
                self.activation,
                self.h[l].slice(s![..n, ..]),
                Some(self.dphi[l].slice(s![..n, ..])),
                self.grad_h[l].slice(s![..n, ..]),
            )
        } else {
            (Activation::Identity, z, None, grad_z)
        };
        LayerView { index: l, activation, linear: &self.layers[l], z, h, dphi, grad_z, grad_h }
    }

    /// The same network in another float type (e.g. f32 weights checked in f64).
    pub fn cast<G: Scalar>(&self) -> Mlp<G> {
        let layers = self
            .layers
            .iter()
            .map(|l| Linear::new(l.weight.mapv(|v| G::of(v.f64())), l.bias.mapv(|v| G::of(v.f64()))))
            .collect();
        let mut m = Mlp::new(layers, self.activation);
        m.want_input_grad = self.want_input_grad;
        m
    }

    /// Every tensor of the network's state (parameters, and any buffers such as running
    /// statistics) as `weights.safetensors` stores it: `(name, shape, values)`, in a fixed order.
    /// Writing the weights and restoring a checkpoint both go through this list (and
    /// [`Mlp::state_mut`]), so a tensor added to the network is saved and restored by adding it
    /// here.
    pub fn state(&self) -> Vec<(String, Vec<usize>, &[F])> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let w = layer.weight.as_slice().expect("weights are contiguous");
            let b = layer.bias.as_slice().expect("biases are contiguous");
            out.push((format!("layers.{l}.weight"), layer.weight.shape().to_vec(), w));
            out.push((format!("layers.{l}.bias"), layer.bias.shape().to_vec(), b));
        }
        out
    }

    /// [`Mlp::state`], writable: `(name, values)` in the same order.
    pub fn state_mut(&mut self) -> Vec<(String, &mut [F])> {
        let mut out = Vec::with_capacity(2 * self.layers.len());
        for (l, layer) in self.layers.iter_mut().enumerate() {
            out.push((format!("layers.{l}.weight"), layer.weight.as_slice_mut().expect("weights are contiguous")));
            out.push((format!("layers.{l}.bias"), layer.bias.as_slice_mut().expect("biases are contiguous")));
        }
        out
    }

    /// Parameter names as `weights.safetensors` stores them: `layers.{i}.weight`, `layers.{i}.bias`.
    pub fn param_names(&self) -> Vec<(String, String)> {
        (0..self.layers.len()).map(|i| (format!("layers.{i}.weight"), format!("layers.{i}.bias"))).collect()
    }
}
