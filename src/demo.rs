//! The demos' runs as configs: `gradscope demo` (sigmoid at depths 2–20, tanh + Xavier, ReLU +
//! He), `gradscope demo --remedies` (50-layer networks with each remedy) and `gradscope demo
//! --recurrent` (RNN, LSTM, GRU through time). Train them with [`crate::run::train_into`].

use crate::config::{ActivationKind, CellKind, Config, Init, Loss, Named, NormChoice, OptimizerKind, RecurrentInit};

/// What every demo run shares: the built-in regression set, 64 units, SGD (lr 0.01, momentum
/// 0.9, batch 64), `steps` steps probed 16 times, seed 0.
pub fn demo_base(steps: u64, threads: usize) -> Config {
    Config {
        data: "regression".into(),
        width: 64,
        loss: Loss::Mse,
        optimizer: OptimizerKind::Sgd,
        lr: Some(0.01),
        momentum: 0.9,
        batch_size: 64,
        steps: Some(steps),
        probe_every: (steps / 15).max(1),
        seed: 0,
        threads,
        ..Config::default()
    }
}

/// One demo run: a name (its folder) and its config.
pub fn setups(steps: u64, threads: usize) -> Vec<(String, Config)> {
    let base = demo_base(steps, threads);
    let mut v: Vec<(String, Config)> = [2, 5, 10, 20]
        .into_iter()
        .map(|d| {
            (
                format!("sigmoid-depth{d}"),
                Config { depth: d, activation: ActivationKind::Sigmoid, init: Init::Pytorch, ..base.clone() },
            )
        })
        .collect();
    v.push((
        "tanh-xavier-depth20".into(),
        Config { depth: 20, activation: ActivationKind::Tanh, init: Init::XavierNormal, ..base.clone() },
    ));
    v.push((
        "relu-kaiming-depth20".into(),
        Config { depth: 20, activation: ActivationKind::Relu, init: Init::KaimingNormal, ..base },
    ));
    v
}

/// Hidden layers of the remedies demo.
pub const REMEDIES_DEPTH: usize = 50;
/// α of the residual runs: with α = 1 the sigmoid's positive outputs pile up along the residual
/// stream and SGD diverges within ten steps; a small branch scale (as SkipInit and Fixup do)
/// keeps the stream near its input.
pub const REMEDIES_RESIDUAL_SCALE: f64 = 0.05;
/// σ_w² of the exploding network (ReLU's critical value is 2).
pub const EXPLODING_SIGMA_W2: f64 = 2.5;
/// clip_norm of the clipped runs.
pub const REMEDIES_CLIP_NORM: f64 = 1.0;

/// The runs of `gradscope demo --remedies`: for sigmoid and tanh at depth 50 (PyTorch's init),
/// plain, each remedy alone and all combined; then ReLU with gaussian σ_w² = 2.5 plain and
/// clipped. Same data, seed, batches and SGD for all.
pub fn remedies_setups(steps: u64, threads: usize) -> Vec<(String, Config)> {
    let base = Config { depth: REMEDIES_DEPTH, ..demo_base(steps, threads) };
    let residual = |c: Config| Config { residual: true, residual_scale: REMEDIES_RESIDUAL_SCALE, ..c };
    let mut v = Vec::new();
    for activation in [ActivationKind::Sigmoid, ActivationKind::Tanh] {
        let act = activation.name();
        let plain = Config { activation, ..base.clone() };
        v.push((format!("{act}-plain"), plain.clone()));
        v.push((format!("{act}-residual"), residual(plain.clone())));
        v.push((format!("{act}-batchnorm"), Config { norm: NormChoice::Batch, ..plain.clone() }));
        v.push((format!("{act}-layernorm"), Config { norm: NormChoice::Layer, ..plain.clone() }));
        v.push((format!("{act}-clip"), Config { clip_norm: Some(REMEDIES_CLIP_NORM), ..plain.clone() }));
        v.push((
            format!("{act}-combined"),
            Config { norm: NormChoice::Batch, clip_norm: Some(REMEDIES_CLIP_NORM), ..residual(plain) },
        ));
    }
    let exploding =
        Config { activation: ActivationKind::Relu, init: Init::Gaussian, sigma_w2: EXPLODING_SIGMA_W2, ..base.clone() };
    v.push(("relu-exploding".into(), exploding.clone()));
    v.push(("relu-exploding-clip".into(), Config { clip_norm: Some(REMEDIES_CLIP_NORM), ..exploding }));
    v
}

/// Sequence lengths of the recurrent demo.
pub const RECURRENT_SEQ_LENS: [usize; 4] = [10, 25, 50, 100];
/// T of the recurrent demo's cures.
pub const RECURRENT_CURE_SEQ_LEN: usize = 50;
/// Hidden size of the recurrent demo's networks.
pub const RECURRENT_HIDDEN: usize = 32;
/// Learning rate (Adam) of the recurrent demo.
pub const RECURRENT_LR: f64 = 0.002;
/// Learning rate of the IRNN runs: high enough that the relu RNN's gradient explodes unclipped.
pub const IRNN_LR: f64 = 0.01;

/// The runs of `gradscope demo --recurrent`: a tanh RNN, an LSTM and a GRU on the adding problem
/// at T = 10, 25, 50, 100 (hidden 32, Adam, batch 64, PyTorch's inits); then at T = 50 the RNN's
/// cures: orthogonal W_hh (tanh), the identity-initialised relu RNN (IRNN) without and with
/// clipping (clip_norm 1), and the LSTM with forget-gate bias 1.
pub fn recurrent_setups(steps: u64, threads: usize) -> Vec<(String, Config)> {
    let base = Config {
        data: "adding".into(),
        width: RECURRENT_HIDDEN,
        loss: Loss::Mse,
        optimizer: OptimizerKind::Adam,
        lr: Some(RECURRENT_LR),
        batch_size: 64,
        steps: Some(steps),
        probe_every: (steps / 10).max(1),
        seed: 0,
        threads,
        ..Config::default()
    };
    let mut v = Vec::new();
    for t in RECURRENT_SEQ_LENS {
        for (name, cell) in [("rnn", CellKind::RnnTanh), ("lstm", CellKind::Lstm), ("gru", CellKind::Gru)] {
            v.push((format!("{name}-T{t}"), Config { cell, seq_len: Some(t), ..base.clone() }));
        }
    }
    let t = RECURRENT_CURE_SEQ_LEN;
    let at = Config { seq_len: Some(t), ..base };
    let orthogonal = Config { cell: CellKind::RnnTanh, recurrent_init: Some(RecurrentInit::Orthogonal), ..at.clone() };
    v.push((format!("rnn-orthogonal-T{t}"), orthogonal));
    let irnn = Config {
        cell: CellKind::RnnRelu,
        recurrent_init: Some(RecurrentInit::Identity),
        lr: Some(IRNN_LR),
        ..at.clone()
    };
    v.push((format!("irnn-T{t}"), irnn.clone()));
    v.push((format!("irnn-clip-T{t}"), Config { clip_norm: Some(REMEDIES_CLIP_NORM), ..irnn }));
    let forget = Config {
        cell: CellKind::Lstm,
        gate_bias: Some(crate::config::GateBiasKind::Forget),
        forget_bias: Some(1.0),
        ..at
    };
    v.push((format!("lstm-forget1-T{t}"), forget));
    v
}
