//! Theory of a recurrent layer at initialisation, beside measurement.
//!
//! - Pascanu, Mikolov & Bengio 2013 ("On the difficulty of training recurrent neural
//!   networks"): the Elman cell's per-step Jacobian ∂h_t/∂h_{t−1} = diag(φ′(z_t))·W_hh has norm
//!   at most γ·σ_max(W_hh), γ = sup|φ′| (1 for tanh and relu, 1/4 for sigmoid). With
//!   σ_max < 1/γ the gradient through time must vanish; above, it may explode.
//!   [`pascanu_bound`] gives σ_max for an init: predicted (Bai–Yin, 2·s·√H for i.i.d. entries of
//!   standard deviation s; exactly 1 for orthogonal and identity blocks) and measured on drawn
//!   matrices.
//! - Mean field (the χ₁ of `mean_field`, with W_hh's variance): for a wide random tanh RNN
//!   z_t = W_hh h_{t−1} + W_ih x_t + b, the pre-activations' second moment settles at the fixed
//!   point q* of q ↦ σ_hh² ∫Dz φ(√q z)² + σ_in², with σ_hh² = H·Var(W_hh) and σ_in² the input
//!   and bias contributions (Var(W_ih x + b_ih + b_hh) per unit). Far from the output, each step
//!   back multiplies E‖∂L/∂h‖² by χ = σ_hh² ∫Dz φ′(√q* z)². This treats W_hh in the backward
//!   pass as independent of the forward pass (the gradient-independence assumption; for tied
//!   recurrent weights it is an approximation, cf. Chen, Pennington & Schoenholz 2018), which is
//!   why [`measure_rnn`] measures it.

use crate::error::{Error, Named, Result};
use crate::nn::Threads;
use crate::nn::recurrent::{Cell, Head, HiddenInit, RecurrentConfig, probe::sigma_max};
use crate::theory::MeanField;
use ndarray::Array3;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

/// σ_max(W_hh) of an init against Pascanu's line 1/γ.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PascanuBound {
    /// γ = sup|φ′| of the cell's recurrent nonlinearity.
    pub gamma: f64,
    /// 1/γ.
    pub line: f64,
    /// σ_max predicted for the init: 2√(H·Var(W_hh)) (Bai–Yin limit) for PyTorch's uniform
    /// init, 1 for orthogonal and identity blocks.
    pub sigma_max_predicted: f64,
    /// σ_max of each drawn H×H block of layer 0's W_hh (power iteration).
    pub sigma_max_measured: Vec<f64>,
    /// For the Elman cell: every block below the line, so the gradient must vanish. (For the
    /// gated cells the bound says nothing on its own: their per-step Jacobian has gate factors.)
    pub must_vanish: bool,
}

/// Pascanu's bound for the network `config` draws with `seed`.
pub fn pascanu_bound(config: &RecurrentConfig, seed: u64) -> Result<PascanuBound> {
    let net = config.init::<f64, _>(&mut ChaCha8Rng::seed_from_u64(seed))?;
    let gamma = config.cell.nonlinearity().max_derivative();
    let h = config.hidden_size;
    let w = net.layers[0].weight_hh.as_slice().expect("contiguous");
    let measured: Vec<f64> =
        (0..config.cell.gates()).map(|b| sigma_max(&w[b * h * h..(b + 1) * h * h], h, h)).collect();
    let predicted = match config.hidden_init {
        HiddenInit::Pytorch => 2.0 / 3f64.sqrt(),
        HiddenInit::Orthogonal | HiddenInit::Identity => 1.0,
    };
    let elman = matches!(config.cell, Cell::RnnTanh | Cell::RnnRelu);
    Ok(PascanuBound {
        gamma,
        line: 1.0 / gamma,
        sigma_max_predicted: predicted,
        must_vanish: elman && measured.iter().all(|&s| s < (1.0 - 1e-9) / gamma),
        sigma_max_measured: measured,
    })
}

/// The mean-field prediction for a random Elman RNN.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RnnMeanField {
    /// σ_hh² = H·Var(W_hh).
    pub sigma_hh2: f64,
    /// σ_in²: the per-unit variance of W_ih x + b_ih + b_hh.
    pub sigma_in2: f64,
    /// q*, the pre-activations' stationary second moment.
    pub q_star: f64,
    /// χ = σ_hh² ∫Dz φ′(√q* z)²: the per-step factor of E‖∂L/∂h_t‖².
    pub chi: f64,
    /// √χ: the per-step factor of ‖∂L/∂h_t‖.
    pub norm_factor: f64,
}

/// The prediction for σ_hh², σ_in² and nonlinearity φ (tanh or relu).
pub fn rnn_mean_field(cell: Cell, sigma_hh2: f64, sigma_in2: f64) -> Result<RnnMeanField> {
    if !matches!(cell, Cell::RnnTanh | Cell::RnnRelu) {
        return Err(Error::invalid(
            "cell",
            cell.name(),
            "the mean-field factor is for the Elman cell (rnn_tanh, rnn_relu)",
        ));
    }
    let mf = MeanField::new(cell.nonlinearity(), sigma_hh2, sigma_in2)?;
    let fp = mf.fixed_point(0.0);
    let q_star = fp.q_star.ok_or_else(|| {
        Error::invalid(
            "sigma_hh2",
            sigma_hh2,
            "q has no finite fixed point here (relu above σ_hh² = 2); no stationary factor",
        )
    })?;
    Ok(RnnMeanField { sigma_hh2, sigma_in2, q_star, chi: fp.chi1, norm_factor: fp.chi1.sqrt() })
}

/// σ_hh² and σ_in² of an init for inputs of `input_size` features of second moment `q_x`:
/// PyTorch's U(±1/√H) has variance 1/(3H) for every entry, so σ_hh² = 1/3 and
/// σ_in² = (input_size·q_x + 2)/(3H) (two biases); an orthogonal W_hh has σ_hh² = 1.
pub fn init_variances(init: HiddenInit, hidden: usize, input_size: usize, q_x: f64) -> Result<(f64, f64)> {
    let unit = 1.0 / (3.0 * hidden as f64);
    match init {
        HiddenInit::Pytorch => Ok((1.0 / 3.0, unit * (input_size as f64 * q_x + 2.0))),
        HiddenInit::Orthogonal => Ok((1.0, unit * (input_size as f64 * q_x + 2.0))),
        HiddenInit::Identity => {
            Err(Error::invalid("hidden_init", "identity", "W_hh = I is not random; mean field needs a random init"))
        }
    }
}

/// What [`measure_rnn`] measures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RnnMeasurement {
    /// E‖∂L/∂h_t‖² over networks and batch rows, t = 1..T (∂L/∂h_T drawn N(0, 1) through a
    /// random head, no loss).
    pub grad_h_sq: Vec<f64>,
    /// The fitted per-step factor of E‖∂L/∂h‖²: (E‖∂L/∂h_from‖² / E‖∂L/∂h_T‖²)^(1/(T − from)).
    pub chi: f64,
    /// The first step of the fit (where q has settled).
    pub from: usize,
}

/// Measures the per-step gradient factor on `samples` random RNNs of hidden size `hidden`
/// (`init`), inputs N(0, `q_x`) of `input_size` features, `seq_len` steps, 8 rows each.
#[allow(clippy::too_many_arguments)]
pub fn measure_rnn(
    cell: Cell,
    init: HiddenInit,
    hidden: usize,
    input_size: usize,
    q_x: f64,
    seq_len: usize,
    samples: usize,
    seed: u64,
) -> Result<RnnMeasurement> {
    let from = 6.min(seq_len.saturating_sub(1)).max(1);
    if seq_len < 8 {
        return Err(Error::invalid("seq_len", seq_len, "measuring a per-step factor needs at least 8 steps"));
    }
    let batch = 8;
    let mut cfg = RecurrentConfig::new(cell, input_size, hidden, 1, hidden);
    (cfg.head, cfg.hidden_init) = (Head::Last, init);
    let mut acc = vec![0.0; seq_len];
    for s in 0..samples {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(s as u64));
        let mut net = cfg.init::<f64, _>(&mut rng)?;
        net.probing = true;
        let sd = q_x.sqrt();
        let x = Array3::from_shape_simple_fn((seq_len, batch, input_size), || {
            sd * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        });
        net.forward(x.view(), Threads::One);
        net.grad_output_mut().mapv_inplace(|_| StandardNormal.sample(&mut rng));
        net.backward(x.view(), Threads::One);
        let rec = net.time_record();
        for (a, g) in acc.iter_mut().zip(&rec.layers[0].grad_h) {
            *a += g * g / (samples * batch) as f64;
        }
    }
    let chi = (acc[from - 1] / acc[seq_len - 1]).powf(1.0 / (seq_len - from) as f64);
    Ok(RnnMeasurement { grad_h_sq: acc, chi, from })
}
