//! Recurrent layers — Elman RNN, LSTM, GRU — with backpropagation through time written out.
//!
//! A [`RecurrentNet`] is what a PyTorch user writes as
//!
//! ```text
//! class Net(nn.Module):
//!     def __init__(self):
//!         self.rnn = nn.LSTM(input_size, hidden_size, num_layers)   # or nn.RNN, nn.GRU
//!         self.fc = nn.Linear(hidden_size, output_size)
//!     def forward(self, x):                   # x: [T, batch, input_size], time-major
//!         out, _ = self.rnn(x)                # zero initial state
//!         return self.fc(out[-1])             # Head::Last; Head::EveryStep: self.fc(out)
//! ```
//!
//! so its state_dict keys are `rnn.weight_ih_l{k}`, `rnn.weight_hh_l{k}`, `rnn.bias_ih_l{k}`,
//! `rnn.bias_hh_l{k}`, `fc.weight`, `fc.bias`, with PyTorch's layouts: `weight_ih_l{k}` is
//! `[gates·H, in]`, the gate blocks stacked in PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
//! Sequences are time-major, `[T, batch, features]` (PyTorch's default `batch_first=False`):
//! step t of the whole batch is one contiguous `[batch, features]` block, which is what a
//! matrix product per step reads.
//!
//! ```text
//! forward, layer k, step t = 1..T     (x_t: the input, or layer k−1's h_t; h_0 = c_0 = 0)
//!   a_t  = x_t·W_ihᵀ + b_ih           for all t at once (one product)
//!   g_t  = h_{t−1}·W_hhᵀ + b_hh       one product per step
//!   cell (rnn.rs, lstm.rs, gru.rs):  gates, c_t, h_t from a_t, g_t, h_{t−1}, c_{t−1}
//! backward, t = T..1
//!   ∂L/∂h_t = (from the output path: head or layer k+1) + (from step t+1)
//!   cell backward: ∂L/∂a_t, ∂L/∂g_t (equal except GRU's n block), ∂L/∂c_{t−1}, direct paths
//!   ∂L/∂h_{t−1} (from step t) = ∂L/∂g_t · W_hh  (+ GRU's z ⊙ ∂L/∂h_t)   — cut by --bptt K
//! then, for all t at once:
//!   ∂L/∂W_ih += Σ_t (∂L/∂a_t)ᵀ x_t     ∂L/∂b_ih += Σ_t,rows ∂L/∂a_t    ∂L/∂x_t = ∂L/∂a_t · W_ih
//!   ∂L/∂W_hh += Σ_t (∂L/∂g_t)ᵀ h_{t−1} ∂L/∂b_hh += Σ_t,rows ∂L/∂g_t
//! ```
//!
//! Truncated BPTT with window K (`bptt = Some(K)`) stops the gradient from flowing from step
//! t into h_{t−1} (and c_{t−1}) whenever t − 1 is a multiple of K: the gradient PyTorch
//! computes when the hidden state is detached every K steps (`h = h.detach()`), the forward
//! values unchanged. [`RecurrentNet::forward_detached`] is the function whose exact gradient
//! that is (the gradient checks use it).
//!
//! Buffers grow to the largest `[T, batch]` seen and are reused: a step allocates nothing
//! after the first.

mod cell;
pub mod gradcheck;
pub mod gru;
pub mod lstm;
pub mod probe;
pub mod rnn;

pub use probe::{GateStats, TimeRecord, TimeStats};

use crate::error::{Error, Named, Result};
use crate::nn::tensor::{Module, Name, Network, Prefix, Shape, TensorKind, TensorMut, TensorRef, data, data_mut};
use crate::nn::{Activation, Init, Linear, Loss, Scalar, Targets, Threads};
use ndarray::{Array1, Array2, ArrayView2, ArrayView3, ArrayViewMut2};
use rand::Rng;
use rand_distr::{Distribution, Uniform};
use serde::{Deserialize, Serialize};

/// The recurrent cell (`rnn_tanh`, also `rnn`; `rnn_relu`, `lstm`, `gru`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Cell {
    /// Elman: h_t = tanh(a_t + g_t), as `nn.RNN(nonlinearity='tanh')`.
    #[serde(alias = "rnn")]
    #[value(alias = "rnn")]
    RnnTanh,
    /// h_t = relu(a_t + g_t), as `nn.RNN(nonlinearity='relu')`.
    RnnRelu,
    /// `nn.LSTM`: gates i, f, g, o.
    Lstm,
    /// `nn.GRU`: gates r, z, n.
    Gru,
}

impl Cell {
    /// Gate blocks stacked in the weights: 1, 4 (i, f, g, o) or 3 (r, z, n).
    pub fn gates(&self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// The Elman cell's nonlinearity (tanh for the gated cells' candidate).
    pub fn nonlinearity(&self) -> Activation {
        if *self == Cell::RnnRelu { Activation::Relu } else { Activation::Tanh }
    }
}

/// Where the Linear head reads the top layer's hidden state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// `fc(out[-1])`: one output row per sequence (adding problem, row-by-row MNIST).
    Last,
    /// `fc(out)`: one output row per step and sequence, time-major (`[T·batch, out]`; copy task).
    EveryStep,
}

/// How W_hh is drawn (W_ih and the biases keep PyTorch's default unless [`GateBias`] says
/// otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenInit {
    /// PyTorch's default: every tensor U(−1/√H, 1/√H).
    Pytorch,
    /// Each H×H gate block of W_hh a random orthogonal matrix (`torch.nn.init.orthogonal_`).
    Orthogonal,
    /// Each gate block of W_hh the identity and the biases 0 (IRNN: Le, Jaitly & Hinton 2015,
    /// meant for `rnn_relu`).
    Identity,
}

/// LSTM gate biases (the sum b_ih + b_hh is what matters; the value goes in b_ih, b_hh's block
/// is set to 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateBias {
    /// Keep the biases as [`HiddenInit`] drew them.
    Default,
    /// Forget-gate bias b_f = value (Jozefowicz, Zaremba & Sutskever 2015 use 1).
    Forget(f64),
    /// Chrono init (Tallec & Ollivier 2018): b_f = ln U(1, T_max − 1), b_i = −b_f.
    Chrono(usize),
}

/// Builds a [`RecurrentNet`], as `MlpConfig` builds an `Mlp`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentConfig {
    /// The cell.
    pub cell: Cell,
    /// Features per step.
    pub input_size: usize,
    /// H, the hidden state's size.
    pub hidden_size: usize,
    /// Stacked layers (PyTorch's `num_layers`).
    pub num_layers: usize,
    /// The head's outputs.
    pub output_size: usize,
    /// Where the head reads.
    pub head: Head,
    /// W_hh's init.
    pub hidden_init: HiddenInit,
    /// LSTM gate biases.
    pub gate_bias: GateBias,
}

impl RecurrentConfig {
    /// A PyTorch-default network.
    pub fn new(cell: Cell, input_size: usize, hidden_size: usize, num_layers: usize, output_size: usize) -> Self {
        Self {
            cell,
            input_size,
            hidden_size,
            num_layers,
            output_size,
            head: Head::Last,
            hidden_init: HiddenInit::Pytorch,
            gate_bias: GateBias::Default,
        }
    }

    /// Checks sizes and that the gate-bias init fits the cell.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("input_size", self.input_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
            ("output_size", self.output_size),
        ] {
            if v == 0 {
                return Err(Error::invalid(key, v, "must be at least 1"));
            }
        }
        match self.gate_bias {
            GateBias::Default => Ok(()),
            _ if self.cell != Cell::Lstm => Err(Error::invalid(
                "gate_bias",
                format!("{:?}", self.gate_bias),
                "forget-gate and chrono biases are for the LSTM; use the default with rnn and gru",
            )),
            GateBias::Chrono(t) if t < 3 => {
                Err(Error::invalid("chrono", t, "T_max must be at least 3 (b_f = ln U(1, T_max − 1))"))
            }
            GateBias::Forget(b) if !b.is_finite() => Err(Error::invalid("forget_bias", b, "must be finite")),
            _ => Ok(()),
        }
    }

    /// Draws the network: per layer weight_ih, weight_hh, bias_ih, bias_hh (PyTorch's order),
    /// then the head (`nn.Linear`'s default). Drawn in f64 and rounded to F.
    pub fn init<F: Scalar, R: Rng + ?Sized>(&self, rng: &mut R) -> Result<RecurrentNet<F>> {
        self.validate()?;
        let (h, g) = (self.hidden_size, self.cell.gates());
        let bound = 1.0 / (h as f64).sqrt();
        let u = Uniform::new_inclusive(-bound, bound).expect("finite bound");
        let mut layers = Vec::with_capacity(self.num_layers);
        for k in 0..self.num_layers {
            let fan_in = if k == 0 { self.input_size } else { h };
            let w_ih = Array2::from_shape_simple_fn((g * h, fan_in), || u.sample(rng));
            let mut w_hh = Array2::from_shape_simple_fn((g * h, h), || u.sample(rng));
            let mut b_ih = Array1::from_shape_simple_fn(g * h, || u.sample(rng));
            let mut b_hh = Array1::from_shape_simple_fn(g * h, || u.sample(rng));
            match self.hidden_init {
                HiddenInit::Pytorch => {}
                HiddenInit::Orthogonal => {
                    for block in 0..g {
                        let q = crate::nn::init::orthogonal(rng, h, h);
                        w_hh.slice_mut(ndarray::s![block * h..(block + 1) * h, ..]).assign(&q);
                    }
                }
                HiddenInit::Identity => {
                    for block in 0..g {
                        w_hh.slice_mut(ndarray::s![block * h..(block + 1) * h, ..]).assign(&Array2::eye(h));
                    }
                    b_ih.fill(0.0);
                    b_hh.fill(0.0);
                }
            }
            gate_biases(self.gate_bias, h, &mut b_ih, &mut b_hh, rng);
            layers.push(RecurrentLayer::new(w_ih.mapv(F::of), w_hh.mapv(F::of), b_ih.mapv(F::of), b_hh.mapv(F::of)));
        }
        let (w, b) = Init::Pytorch.draw(rng, h, self.output_size, 1.0, 1.0, 0.0);
        Ok(RecurrentNet::new(self.cell, self.head, layers, Linear::new(w.mapv(F::of), b.mapv(F::of))))
    }
}

/// LSTM forget/input gate biases (blocks i = 0, f = 1 of PyTorch's i, f, g, o).
fn gate_biases<R: Rng + ?Sized>(gb: GateBias, h: usize, b_ih: &mut Array1<f64>, b_hh: &mut Array1<f64>, rng: &mut R) {
    match gb {
        GateBias::Default => {}
        GateBias::Forget(v) => {
            b_ih.slice_mut(ndarray::s![h..2 * h]).fill(v);
            b_hh.slice_mut(ndarray::s![h..2 * h]).fill(0.0);
        }
        GateBias::Chrono(t_max) => {
            let u = Uniform::new_inclusive(1.0, (t_max - 1) as f64).expect("T_max ≥ 3");
            for j in 0..h {
                let bf = u.sample(rng).ln();
                b_ih[h + j] = bf;
                b_ih[j] = -bf;
            }
            b_hh.slice_mut(ndarray::s![0..2 * h]).fill(0.0);
        }
    }
}

/// One recurrent layer: its four tensors, their gradients, and the per-step buffers of the
/// last forward pass.
///
/// # Shapes (G gates, H hidden, I inputs)
/// - `weight_ih`: `[G·H, I]`, `weight_hh`: `[G·H, H]`, `bias_ih`, `bias_hh`: `[G·H]`
#[derive(Clone, Debug)]
pub struct RecurrentLayer<F> {
    /// W_ih.
    pub weight_ih: Array2<F>,
    /// W_hh.
    pub weight_hh: Array2<F>,
    /// b_ih.
    pub bias_ih: Array1<F>,
    /// b_hh.
    pub bias_hh: Array1<F>,
    /// ∂L/∂W_ih.
    pub grad_weight_ih: Array2<F>,
    /// ∂L/∂W_hh.
    pub grad_weight_hh: Array2<F>,
    /// ∂L/∂b_ih.
    pub grad_bias_ih: Array1<F>,
    /// ∂L/∂b_hh.
    pub grad_bias_hh: Array1<F>,
    pub(crate) buf: cell::Buffers<F>,
}

impl<F: Scalar> RecurrentLayer<F> {
    /// A layer with these tensors and zero gradients.
    pub fn new(weight_ih: Array2<F>, weight_hh: Array2<F>, bias_ih: Array1<F>, bias_hh: Array1<F>) -> Self {
        Self {
            grad_weight_ih: Array2::zeros(weight_ih.raw_dim()),
            grad_weight_hh: Array2::zeros(weight_hh.raw_dim()),
            grad_bias_ih: Array1::zeros(bias_ih.raw_dim()),
            grad_bias_hh: Array1::zeros(bias_hh.raw_dim()),
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            buf: cell::Buffers::default(),
        }
    }

    /// H.
    pub fn hidden_size(&self) -> usize {
        self.weight_hh.ncols()
    }

    /// Features per step of this layer's input.
    pub fn input_size(&self) -> usize {
        self.weight_ih.ncols()
    }

    /// h_1 … h_T of the last forward pass, `[T·batch, H]`.
    pub fn output(&self) -> ArrayView2<'_, F> {
        let (t, b, h) = (self.buf.seq, self.buf.batch, self.hidden_size());
        ArrayView2::from_shape((t * b, h), &self.buf.h[b * h..(t + 1) * b * h]).expect("sized by reserve")
    }

    /// ∂L/∂a_t of the last backward pass (the gate pre-activations' gradient, input side),
    /// `[T·batch, G·H]`.
    pub fn grad_pre(&self) -> &[F] {
        let (t, b, gh) = (self.buf.seq, self.buf.batch, self.weight_hh.nrows());
        &self.buf.dgi[..t * b * gh]
    }

    /// ‖∂L/∂h_t‖ for t = 1..T, recorded by the last backward pass made while probing.
    pub fn grad_h_norms(&self) -> &[f64] {
        &self.buf.grad_h_norm[..self.buf.seq]
    }

    fn zero_grad(&mut self) {
        self.grad_weight_ih.fill(F::zero());
        self.grad_weight_hh.fill(F::zero());
        self.grad_bias_ih.fill(F::zero());
        self.grad_bias_hh.fill(F::zero());
    }
}

/// Stacked recurrent layers and a Linear head.
#[derive(Clone, Debug)]
pub struct RecurrentNet<F> {
    /// The cell of every layer.
    pub cell: Cell,
    /// Where the head reads.
    pub head: Head,
    /// Layer 0 reads the input.
    pub layers: Vec<RecurrentLayer<F>>,
    /// The head, `fc`.
    pub fc: Linear<F>,
    /// Truncated BPTT window K (None: the full sequence).
    pub bptt: Option<usize>,
    /// Compute ∂L/∂x in `backward` (always done while probing).
    pub want_input_grad: bool,
    /// Record the per-step gradient norms in `backward` (see [`RecurrentNet::time_record`]).
    pub probing: bool,
    out: Vec<F>,
    grad_out: Vec<F>,
    grad_input: Vec<F>,
    seq: usize,
    batch: usize,
}

impl<F: Scalar> RecurrentNet<F> {
    /// A network of these layers (each reading the one below) and head.
    ///
    /// **Panics** if the sizes do not chain.
    pub fn new(cell: Cell, head: Head, layers: Vec<RecurrentLayer<F>>, fc: Linear<F>) -> Self {
        let h = layers[0].hidden_size();
        for (k, l) in layers.iter().enumerate() {
            assert!(
                l.hidden_size() == h
                    && l.weight_hh.nrows() == cell.gates() * h
                    && l.weight_ih.nrows() == cell.gates() * h
                    && l.bias_ih.len() == cell.gates() * h
                    && l.bias_hh.len() == cell.gates() * h
                    && (k == 0 || l.input_size() == h),
                "gradscope internal error: layer {k} does not fit a {} of hidden size {h}",
                cell.name()
            );
        }
        assert_eq!(fc.fan_in(), h, "gradscope internal error: the head must read H features");
        Self {
            cell,
            head,
            layers,
            fc,
            bptt: None,
            want_input_grad: false,
            probing: false,
            out: Vec::new(),
            grad_out: Vec::new(),
            grad_input: Vec::new(),
            seq: 0,
            batch: 0,
        }
    }

    /// Features per step.
    pub fn input_size(&self) -> usize {
        self.layers[0].input_size()
    }

    /// H.
    pub fn hidden_size(&self) -> usize {
        self.layers[0].hidden_size()
    }

    /// The head's outputs.
    pub fn output_size(&self) -> usize {
        self.fc.fan_out()
    }

    fn out_rows(&self) -> usize {
        match self.head {
            Head::Last => self.batch,
            Head::EveryStep => self.seq * self.batch,
        }
    }

    /// Sizes every buffer for `[seq, batch]` (they only grow).
    pub fn reserve(&mut self, seq: usize, batch: usize) {
        (self.seq, self.batch) = (seq, batch);
        let (cell, input) = (self.cell, self.input_size());
        for l in &mut self.layers {
            let (h, i) = (l.hidden_size(), l.input_size());
            l.buf.reserve(cell, seq, batch, h, i);
        }
        let rows = self.out_rows();
        let o = self.output_size();
        grow(&mut self.out, rows * o);
        grow(&mut self.grad_out, rows * o);
        grow(&mut self.grad_input, seq * batch * input);
    }

    /// Runs the sequence `x` (`[T, batch, input_size]`, time-major) from a zero state; returns
    /// the head's output (`[batch, out]` or `[T·batch, out]`).
    pub fn forward(&mut self, x: ArrayView3<F>, threads: Threads) -> ArrayView2<'_, F> {
        self.forward_impl(x, None, threads);
        self.output()
    }

    /// The forward pass whose exact gradient truncated BPTT with window `k` computes: the state
    /// each layer enters step t with, for t − 1 a positive multiple of `k`, is taken from
    /// `states` (as [`RecurrentNet::boundary_states`] recorded them) instead of the previous
    /// step. At the recorded values the outputs equal [`RecurrentNet::forward`]'s; but moving a
    /// weight changes each window only through its own steps — what `h.detach()` does.
    pub fn forward_detached(
        &mut self,
        x: ArrayView3<F>,
        k: usize,
        states: &[Vec<F>],
        threads: Threads,
    ) -> ArrayView2<'_, F> {
        self.forward_impl(x, Some((k, states)), threads);
        self.output()
    }

    /// Every layer's state (h, then c for the LSTM) after steps k, 2k, … < T of the last
    /// forward pass, one flat vector per layer.
    pub fn boundary_states(&self, k: usize) -> Vec<Vec<F>> {
        self.layers.iter().map(|l| l.buf.boundary_states(self.cell, k, l.hidden_size())).collect()
    }

    fn forward_impl(&mut self, x: ArrayView3<F>, detached: Option<(usize, &[Vec<F>])>, threads: Threads) {
        let (t, b, i) = x.dim();
        assert_eq!(i, self.input_size(), "gradscope internal error: the sequence has {i} features per step");
        self.reserve(t, b);
        let x = x.as_standard_layout();
        let x2 = x.view().into_shape_with_order((t * b, i)).expect("standard layout");
        let cell = self.cell;
        for k in 0..self.layers.len() {
            let (below, rest) = self.layers.split_at_mut(k);
            let input = if k == 0 { x2.view() } else { below[k - 1].output() };
            let states = detached.map(|(w, s)| (w, s[k].as_slice()));
            cell::forward_layer(cell, &mut rest[0], input, states, threads);
        }
        let rows = self.out_rows();
        let o = self.output_size();
        let top = self.layers.last().expect("at least one layer");
        let h = top.output();
        let hin = match self.head {
            Head::Last => h.slice_move(ndarray::s![(t - 1) * b.., ..]),
            Head::EveryStep => h,
        };
        let out = ArrayViewMut2::from_shape((rows, o), &mut self.out[..rows * o]).expect("sized by reserve");
        self.fc.forward(hin, out, threads);
    }

    /// The head's output of the last forward pass.
    pub fn output(&self) -> ArrayView2<'_, F> {
        let (rows, o) = (self.out_rows(), self.output_size());
        ArrayView2::from_shape((rows, o), &self.out[..rows * o]).expect("sized by reserve")
    }

    /// ∂L/∂(output) of the last `loss_grad` (or as written through `grad_output_mut`).
    pub fn grad_output(&self) -> ArrayView2<'_, F> {
        let (rows, o) = (self.out_rows(), self.output_size());
        ArrayView2::from_shape((rows, o), &self.grad_out[..rows * o]).expect("sized by reserve")
    }

    /// ∂L/∂(output), to be written before [`RecurrentNet::backward`] (or by `loss_grad`).
    pub fn grad_output_mut(&mut self) -> ArrayViewMut2<'_, F> {
        let (rows, o) = (self.out_rows(), self.output_size());
        ArrayViewMut2::from_shape((rows, o), &mut self.grad_out[..rows * o]).expect("sized by reserve")
    }

    /// L of the last forward pass, with ∂L/∂(output) written for the backward pass.
    pub fn loss_grad(&mut self, target: Targets<F>, loss: Loss) -> f64 {
        let (rows, o) = (self.out_rows(), self.output_size());
        let out = ArrayView2::from_shape((rows, o), &self.out[..rows * o]).expect("sized by reserve");
        let grad = ArrayViewMut2::from_shape((rows, o), &mut self.grad_out[..rows * o]).expect("sized by reserve");
        loss.forward_backward(out, target, grad)
    }

    /// Backpropagation through time from ∂L/∂(output): adds every tensor's gradient and, when
    /// wanted or probing, writes ∂L/∂x (`grad_input`).
    pub fn backward(&mut self, x: ArrayView3<F>, threads: Threads) {
        let (t, b, i) = x.dim();
        assert!(t == self.seq && b == self.batch, "gradscope internal error: backward without its forward");
        let x = x.as_standard_layout();
        let x2 = x.view().into_shape_with_order((t * b, i)).expect("standard layout");
        let (rows, o, hs) = (self.out_rows(), self.output_size(), self.hidden_size());
        // the head: ∂L/∂h of the top layer's output path
        let top = self.layers.last_mut().expect("at least one layer");
        let grad_out = ArrayView2::from_shape((rows, o), &self.grad_out[..rows * o]).expect("sized by reserve");
        let (h_all, dy) = top.buf.output_and_dy(t, b, hs);
        match self.head {
            Head::Last => {
                dy[..(t - 1) * b * hs].fill(F::zero());
                let hin = ArrayView2::from_shape((b, hs), &h_all[t * b * hs..]).expect("sized");
                let dlast = ArrayViewMut2::from_shape((b, hs), &mut dy[(t - 1) * b * hs..]).expect("sized");
                self.fc.backward(hin, grad_out, Some(dlast), threads);
            }
            Head::EveryStep => {
                let hin = ArrayView2::from_shape((t * b, hs), &h_all[b * hs..]).expect("sized");
                let dall = ArrayViewMut2::from_shape((t * b, hs), &mut dy[..]).expect("sized");
                self.fc.backward(hin, grad_out, Some(dall), threads);
            }
        }
        let want_dx0 = self.want_input_grad || self.probing;
        for k in (0..self.layers.len()).rev() {
            let (below, rest) = self.layers.split_at_mut(k);
            let layer = &mut rest[0];
            let (input, dx) = if k == 0 {
                let dx = want_dx0.then(|| {
                    ArrayViewMut2::from_shape((t * b, i), &mut self.grad_input[..t * b * i]).expect("sized by reserve")
                });
                (x2.view(), dx)
            } else {
                let (out, dy) = below[k - 1].buf.output_and_dy(t, b, hs);
                let input = ArrayView2::from_shape((t * b, hs), &out[b * hs..]).expect("sized");
                (input, Some(ArrayViewMut2::from_shape((t * b, hs), dy).expect("sized")))
            };
            cell::backward_layer(self.cell, layer, input, dx, self.bptt, self.probing, threads);
        }
    }

    /// ∂L/∂x of the last backward pass, `[T·batch, input_size]` (time-major rows).
    pub fn grad_input(&self) -> ArrayView2<'_, F> {
        let (t, b, i) = (self.seq, self.batch, self.input_size());
        ArrayView2::from_shape((t * b, i), &self.grad_input[..t * b * i]).expect("sized by reserve")
    }

    /// Forward, loss, backward: returns L, leaves the gradients added to the tensors' grads.
    pub fn loss_and_grads(&mut self, x: ArrayView3<F>, target: Targets<F>, loss: Loss, threads: Threads) -> f64 {
        self.forward_impl(x, None, threads);
        let l = self.loss_grad(target, loss);
        self.backward(x, threads);
        l
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        self.layers.iter_mut().for_each(RecurrentLayer::zero_grad);
        self.fc.zero_grad();
    }

    /// The same network in another float type (buffers empty): every tensor of
    /// [`Network::visit`] converted.
    pub fn cast<G: Scalar>(&self) -> RecurrentNet<G> {
        let z2 = |a: &Array2<F>| Array2::<G>::zeros(a.raw_dim());
        let z1 = |a: &Array1<F>| Array1::<G>::zeros(a.raw_dim());
        let layers = self
            .layers
            .iter()
            .map(|l| RecurrentLayer::new(z2(&l.weight_ih), z2(&l.weight_hh), z1(&l.bias_ih), z1(&l.bias_hh)))
            .collect();
        let fc = Linear::new(z2(&self.fc.weight), z1(&self.fc.bias));
        let mut net = RecurrentNet::new(self.cell, self.head, layers, fc);
        (net.bptt, net.want_input_grad) = (self.bptt, self.want_input_grad);
        let mut from = self.tensors().into_iter();
        net.visit_mut(&mut |t| {
            let src = from.next().expect("gradscope internal error: cast visits the same tensors");
            debug_assert_eq!(src.name, t.name);
            for (d, &s) in t.value.iter_mut().zip(src.value) {
                *d = G::of(s.f64());
            }
        });
        net
    }
}

/// The recurrent module's group: `rnn.weight_ih_l{k}`, … (PyTorch's `self.rnn`).
pub const RNN: &str = "rnn";
/// The head's group: `fc.weight`, `fc.bias` (PyTorch's `self.fc`).
pub const FC: &str = "fc";

/// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, as `nn.RNN`/`nn.LSTM`/`nn.GRU` list them
/// (named `{leaf}_l{k}` under [`Prefix::suffix`]).
impl<F: Scalar> Module<F> for RecurrentLayer<F> {
    fn visit<'a>(&'a self, p: Prefix, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        let (w, b) = (TensorKind::Weight, TensorKind::Bias);
        for (leaf, kind, value, grad, shape) in [
            ("weight_ih", w, data(&self.weight_ih), data(&self.grad_weight_ih), self.weight_ih.shape()),
            ("weight_hh", w, data(&self.weight_hh), data(&self.grad_weight_hh), self.weight_hh.shape()),
            ("bias_ih", b, data(&self.bias_ih), data(&self.grad_bias_ih), self.bias_ih.shape()),
            ("bias_hh", b, data(&self.bias_hh), data(&self.grad_bias_hh), self.bias_hh.shape()),
        ] {
            f(TensorRef { name: p.name(leaf), kind, shape: Shape::of(shape), value, grad: Some(grad) });
        }
    }

    fn visit_mut<'a>(&'a mut self, p: Prefix, f: &mut dyn FnMut(TensorMut<'a, F>)) {
        let (w, b) = (TensorKind::Weight, TensorKind::Bias);
        let (wi, wh, bi, bh) = (
            Shape::of(self.weight_ih.shape()),
            Shape::of(self.weight_hh.shape()),
            Shape::of(self.bias_ih.shape()),
            Shape::of(self.bias_hh.shape()),
        );
        let Self {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            grad_weight_ih,
            grad_weight_hh,
            grad_bias_ih,
            grad_bias_hh,
            ..
        } = self;
        for (leaf, kind, value, grad, shape) in [
            ("weight_ih", w, data_mut(weight_ih), data_mut(grad_weight_ih), wi),
            ("weight_hh", w, data_mut(weight_hh), data_mut(grad_weight_hh), wh),
            ("bias_ih", b, data_mut(bias_ih), data_mut(grad_bias_ih), bi),
            ("bias_hh", b, data_mut(bias_hh), data_mut(grad_bias_hh), bh),
        ] {
            f(TensorMut { name: p.name(leaf), kind, shape, value, grad: Some(grad) });
        }
    }
}

/// The state_dict of `Net` in the module docs: per layer `rnn.weight_ih_l{k}`,
/// `rnn.weight_hh_l{k}`, `rnn.bias_ih_l{k}`, `rnn.bias_hh_l{k}`, then `fc.weight`, `fc.bias`.
impl<F: Scalar> Network<F> for RecurrentNet<F> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        for (k, l) in self.layers.iter().enumerate() {
            l.visit(Prefix::suffix(RNN, k), f);
        }
        self.fc.visit(Prefix::plain(FC), f);
    }

    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(TensorMut<'a, F>)) {
        for (k, l) in self.layers.iter_mut().enumerate() {
            l.visit_mut(Prefix::suffix(RNN, k), f);
        }
        self.fc.visit_mut(Prefix::plain(FC), f);
    }

    /// One per recurrent layer, `rnn.weight_ih_l{k}` (the weights reading the layer below, as
    /// an MLP's `layers.{l}.weight`), then the head's `fc.weight`.
    fn measures(name: Name, kind: TensorKind) -> bool {
        kind == TensorKind::Weight && ((name.group == RNN && name.leaf == "weight_ih") || name.group == FC)
    }
}

fn grow<F: Scalar>(v: &mut Vec<F>, n: usize) {
    if v.len() < n {
        v.resize(n, F::zero());
    }
}

/// Σ over rows of a `[rows, n]` block, added to `acc` row by row (the order of the plain
/// loop), through the vectorised `simd::add_rows`.
fn add_column_sums<F: Scalar>(acc: &mut Array1<F>, rows: ArrayView2<F>) {
    let rows = rows.to_slice().expect("gradscope internal error: per-step buffers are contiguous");
    let acc = acc.as_slice_mut().expect("gradscope internal error: tensors are contiguous");
    crate::nn::simd::add_rows(acc, rows);
}
