//! Recurrent layers (issue 14): every tensor's gradient and ∂L/∂x_t against f64 central
//! differences — RNN (tanh, relu), LSTM, GRU; 1 and 2 layers; every init; last-step and
//! every-step heads; full and truncated BPTT — plus the probes through time and the weights
//! round trip. PyTorch agreement is checked by scripts/check_recurrent.py.

use gradscope::error::Named;
use gradscope::io::recurrent::{from_safetensors, to_safetensors};
use gradscope::nn::recurrent::gradcheck::check_recurrent;
use gradscope::nn::recurrent::{Cell, GateBias, Head, HiddenInit, RecurrentConfig, RecurrentNet};
use gradscope::nn::{Loss, Network, Targets, Threads};
use gradscope::theory::recurrent::{init_variances, measure_rnn, pascanu_bound, rnn_mean_field};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const CELLS: [Cell; 4] = [Cell::RnnTanh, Cell::RnnRelu, Cell::Lstm, Cell::Gru];

fn inits(cell: Cell) -> Vec<(HiddenInit, GateBias)> {
    let mut v = vec![
        (HiddenInit::Pytorch, GateBias::Default),
        (HiddenInit::Orthogonal, GateBias::Default),
        (HiddenInit::Identity, GateBias::Default),
    ];
    if cell == Cell::Lstm {
        v.push((HiddenInit::Pytorch, GateBias::Forget(1.0)));
        v.push((HiddenInit::Orthogonal, GateBias::Chrono(12)));
    }
    v
}

struct Case {
    net: RecurrentNet<f64>,
    x: Array3<f64>,
    values: Array2<f64>,
    classes: Vec<usize>,
}

/// A small network and batch: I = 3, H = 4, T = 5, B = 2, 2 outputs.
fn case(cell: Cell, layers: usize, init: (HiddenInit, GateBias), head: Head, seed: u64) -> Case {
    let (t, b, i, o) = (5, 2, 3, 2);
    let mut cfg = RecurrentConfig::new(cell, i, 4, layers, o);
    (cfg.hidden_init, cfg.gate_bias, cfg.head) = (init.0, init.1, head);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let net = cfg.init::<f64, _>(&mut rng).unwrap();
    let x = Array3::from_shape_simple_fn((t, b, i), || rng.random_range(-1.5..1.5));
    let rows = if head == Head::Last { b } else { t * b };
    let values = Array2::from_shape_simple_fn((rows, o), || rng.random_range(-1.0..1.0));
    let classes = (0..rows).map(|_| rng.random_range(0..o)).collect();
    Case { net, x, values, classes }
}

fn check(c: &Case, loss: Loss, label: &str) {
    let target =
        if loss == Loss::CrossEntropy { Targets::Classes(&c.classes) } else { Targets::Values(c.values.view()) };
    let checks = check_recurrent(&c.net, c.x.view(), target, loss);
    assert_eq!(checks.len(), 4 * c.net.layers.len() + 3, "{label}: every tensor and the input");
    for k in &checks {
        assert!(k.norm > 0.0, "{label}: {} has a zero numeric gradient; the check would prove nothing", k.name);
        assert!(k.passes(1e-7), "{label}: {} rel error {:.3e} (noise {:.1e})", k.name, k.rel_error, k.noise);
    }
}

#[test]
fn every_tensor_and_the_input_match_central_differences() {
    for cell in CELLS {
        for layers in [1, 2] {
            for init in inits(cell) {
                for (head, loss) in [(Head::Last, Loss::Mse), (Head::EveryStep, Loss::CrossEntropy)] {
                    for bptt in [None, Some(2)] {
                        let mut c = case(cell, layers, init, head, 3);
                        c.net.bptt = bptt;
                        let label = format!("{} L{layers} {init:?} {head:?} bptt {bptt:?}", cell.name());
                        check(&c, loss, &label);
                    }
                }
            }
        }
    }
}

/// Truncation changes the gradient (else the truncated checks above would test nothing new),
/// and leaves the forward pass alone.
#[test]
fn truncation_cuts_the_gradient_but_not_the_forward_pass() {
    for cell in CELLS {
        let c = case(cell, 2, (HiddenInit::Pytorch, GateBias::Default), Head::EveryStep, 5);
        let grads = |bptt: Option<usize>| {
            let mut n = c.net.clone();
            n.bptt = bptt;
            let l = n.loss_and_grads(c.x.view(), Targets::Values(c.values.view()), Loss::Mse, Threads::One);
            (l, n.layers[0].grad_weight_hh.clone())
        };
        let ((l_full, g_full), (l_cut, g_cut)) = (grads(None), grads(Some(2)));
        assert_eq!(l_full, l_cut, "{}", cell.name());
        let diff = (&g_full - &g_cut).mapv(f64::abs).sum();
        assert!(diff > 1e-6 * g_full.mapv(f64::abs).sum(), "{}: truncation changed nothing", cell.name());
        // a window as long as the sequence is no truncation
        let (_, g_long) = grads(Some(5));
        assert_eq!(g_long, g_full, "{}", cell.name());
    }
}

/// Probing records norms without changing a single gradient bit; the record's numbers are the
/// norms of the tensors the backward pass wrote.
#[test]
fn probes_through_time_read_the_backward_pass() {
    for cell in CELLS {
        let c = case(cell, 2, (HiddenInit::Pytorch, GateBias::Default), Head::Last, 9);
        let mut plain = c.net.clone();
        plain.want_input_grad = true;
        plain.loss_and_grads(c.x.view(), Targets::Values(c.values.view()), Loss::Mse, Threads::One);
        let mut probed = c.net.clone();
        probed.probing = true;
        probed.loss_and_grads(c.x.view(), Targets::Values(c.values.view()), Loss::Mse, Threads::One);
        assert_eq!(plain.layers[0].grad_weight_hh, probed.layers[0].grad_weight_hh);
        assert_eq!(plain.grad_input(), probed.grad_input());
        let rec = probed.time_record();
        assert_eq!(rec.layers.len(), 2);
        let gi = probed.grad_input();
        for t in 0..5 {
            let want = gi.slice(ndarray::s![t * 2..(t + 1) * 2, ..]).mapv(|v| v * v).sum().sqrt();
            assert!((rec.layers[0].grad_x[t] - want).abs() <= 1e-15 * want, "{}: ‖∂L/∂x_{t}‖", cell.name());
        }
        let top = &rec.layers[1];
        assert_eq!(top.step_factor.len(), 4);
        assert!((top.step_factor[3] - top.grad_h[3] / top.grad_h[4]).abs() < 1e-15);
        assert_eq!(rec.vanishing_ratio_time, rec.layers[0].grad_x[0] / rec.layers[0].grad_x[4]);
        assert_eq!(top.grad_c.is_some(), cell == Cell::Lstm);
        let gates = top.gates.iter().map(|g| g.gate.as_str()).collect::<Vec<_>>().join("");
        assert_eq!(
            gates,
            match cell {
                Cell::Lstm => "ifo",
                Cell::Gru => "rz",
                _ => "",
            }
        );
        for g in &top.gates {
            assert!(g.mean.iter().all(|m| *m > 0.0 && *m < 1.0) && g.closed + g.open <= 1.0, "{g:?}");
        }
    }
}

/// A random tanh RNN with PyTorch's init: σ_max(W_hh) ≈ 2/√3 > 1, yet the gradient through time
/// vanishes (φ′ < 1 and the direction is not W_hh's top singular vector).
#[test]
fn the_tanh_rnn_gradient_vanishes_through_time() {
    let cfg = RecurrentConfig::new(Cell::RnnTanh, 2, 64, 1, 1);
    let mut net = cfg.init::<f64, _>(&mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    net.probing = true;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = Array3::from_shape_simple_fn((25, 16, 2), || rng.random_range(0.0..1.0));
    let y = Array2::from_shape_simple_fn((16, 1), || rng.random_range(0.0..2.0));
    net.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, Threads::One);
    let rec = net.time_record();
    let s = rec.layers[0].sigma_max_hh[0];
    assert!(s > 1.0 && s < 2.0 / 3f64.sqrt() + 0.05, "σ_max {s}");
    assert!(rec.vanishing_ratio_time < 1e-3, "first/last {}", rec.vanishing_ratio_time);
    assert!(rec.layers[0].step_factor.iter().all(|f| *f < 1.0), "{:?}", rec.layers[0].step_factor);
}

#[test]
fn weights_round_trip_through_safetensors_under_pytorch_names() {
    for cell in CELLS {
        let c = case(cell, 2, (HiddenInit::Orthogonal, GateBias::Default), Head::Last, 4);
        let bytes = to_safetensors(&c.net);
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<&str> = st.names().into_iter().collect();
        names.sort();
        assert_eq!(names[0], "fc.bias");
        assert!(names.contains(&"rnn.weight_hh_l1"));
        let mut back: RecurrentNet<f64> = from_safetensors(&bytes, Path::new("w"), Head::Last, Cell::RnnTanh).unwrap();
        let mut orig = c.net.clone();
        assert_eq!(back.cell, cell);
        assert_eq!(back.forward(c.x.view(), Threads::One), orig.forward(c.x.view(), Threads::One));
    }
    let e = from_safetensors::<f64>(b"junk", Path::new("w.safetensors"), Head::Last, Cell::RnnTanh).unwrap_err();
    assert!(e.to_string().contains("w.safetensors"), "{e}");
}

/// Mean field beside measurement: wide random tanh RNNs with PyTorch's init and with an
/// orthogonal W_hh, the measured per-step factor of E‖∂L/∂h‖² within 10% of χ.
#[test]
fn mean_field_chi_matches_random_tanh_rnns() {
    for init in [HiddenInit::Pytorch, HiddenInit::Orthogonal] {
        let (hidden, input) = (256, 4);
        let (s_hh, s_in) = init_variances(init, hidden, input, 1.0).unwrap();
        let theory = rnn_mean_field(Cell::RnnTanh, s_hh, s_in).unwrap();
        let m = measure_rnn(Cell::RnnTanh, init, hidden, input, 1.0, 30, 6, 11).unwrap();
        let rel = m.chi / theory.chi - 1.0;
        assert!(rel.abs() < 0.10, "{init:?}: measured χ {} vs predicted {} ({rel:+.3})", m.chi, theory.chi);
    }
}

#[test]
fn pascanu_line_for_the_inits() {
    let mut cfg = RecurrentConfig::new(Cell::RnnTanh, 3, 200, 1, 1);
    let b = pascanu_bound(&cfg, 1).unwrap();
    assert_eq!(b.line, 1.0);
    // PyTorch's init: 2/√3 ≈ 1.155 in the limit; finite H sits a little below
    assert!((b.sigma_max_measured[0] / b.sigma_max_predicted - 1.0).abs() < 0.05, "{b:?}");
    assert!(!b.must_vanish);
    cfg.hidden_init = HiddenInit::Orthogonal;
    let b = pascanu_bound(&cfg, 1).unwrap();
    assert!((b.sigma_max_measured[0] - 1.0).abs() < 1e-9, "{b:?}");
    cfg.cell = Cell::Lstm;
    let b = pascanu_bound(&cfg, 1).unwrap();
    assert_eq!(b.sigma_max_measured.len(), 4);
}

/// Two threads split each time step's batch rows (product and cell together): the gradients,
/// the input gradient and the probes through time equal one thread's to rounding, for every
/// cell, with and without truncation, on an odd batch.
#[test]
fn two_threads_split_the_rows_and_agree_with_one() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for cell in CELLS {
        for bptt in [None, Some(3)] {
            let mut cfg = RecurrentConfig::new(cell, 3, 24, 2, 2);
            cfg.head = Head::EveryStep;
            let base = cfg.init::<f64, _>(&mut ChaCha8Rng::seed_from_u64(5)).unwrap();
            let x = Array3::from_shape_fn((9, 7, 3), |(t, b, i)| ((t * 21 + b * 3 + i) as f64 * 0.23).sin());
            let y = Array2::from_shape_fn((63, 2), |(r, o)| ((r + 3 * o) as f64 * 0.17).cos());
            let run = |threads: Threads| {
                let mut net = base.clone();
                (net.bptt, net.probing) = (bptt, true);
                let loss = net.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Mse, threads);
                let mut grads = Vec::new();
                net.for_each_param(|_, _, _, g| grads.extend_from_slice(g));
                grads.extend(net.grad_input().iter().copied());
                (loss, grads, net.time_record())
            };
            let (l1, g1, r1) = run(Threads::One);
            let (l2, g2, r2) = pool.install(|| run(Threads::new(2)));
            let scale = g1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let worst = g1.iter().zip(&g2).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!((l1 - l2).abs() <= 1e-14 * l1.abs(), "{} {bptt:?}: loss {l1} vs {l2}", cell.name());
            assert!(
                worst <= 1e-12 * scale,
                "{} {bptt:?}: gradients differ by {worst:e} (scale {scale:e})",
                cell.name()
            );
            for (a, b) in r1.layers.iter().zip(&r2.layers) {
                for (u, v) in a.grad_h.iter().zip(&b.grad_h).chain(a.grad_x.iter().zip(&b.grad_x)) {
                    assert!((u - v).abs() <= 1e-12 * u.abs().max(1e-300), "{} {bptt:?}: probe {u} vs {v}", cell.name());
                }
                assert!((a.grad_h0 - b.grad_h0).abs() <= 1e-12 * a.grad_h0.abs().max(1e-300));
            }
        }
    }
}
