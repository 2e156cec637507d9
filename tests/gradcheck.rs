//! Finite-difference gradient checks in f64 of every activation, loss and layer, and of whole
//! MLPs of several depths: the chain rule in `Mlp::backward` against central differences.

use gradscope::error::Named;
use gradscope::nn::gradcheck::{check_mlp, rel_error, step};
use gradscope::nn::{Activation, ActivationKind, Init, Linear, Loss, MlpConfig, Targets, Threads};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

fn randn(rng: &mut ChaCha8Rng, shape: (usize, usize), scale: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || scale * rng.sample::<f64, _>(StandardNormal))
}

/// Keeps inputs of kinked activations (relu family at 0, softplus at 20) away from the kink.
fn off_kinks(mut z: Array2<f64>) -> Array2<f64> {
    z.mapv_inplace(|v| if v.abs() < 1e-3 { v + 0.01 } else { v });
    z
}

#[test]
fn every_activation_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for name in ActivationKind::names() {
        let act = Activation::new(ActivationKind::parse("activation", &name).unwrap(), 0.07);
        let z = off_kinks(randn(&mut rng, (4, 5), 2.0));
        // a non-constant upstream gradient: L = Σ exp(0.3·h)·c
        let c = randn(&mut rng, (4, 5), 1.0);
        let loss = |z: &Array2<f64>| z.iter().zip(&c).map(|(&z, &c)| (0.3 * act.f(z)).exp() * c).sum::<f64>();
        let mut h = Array2::zeros((4, 5));
        let mut dphi = Array2::zeros((4, 5));
        act.forward_with_derivative(z.view(), h.view_mut(), dphi.view_mut());
        let grad_h = Array2::from_shape_fn((4, 5), |(i, j)| 0.3 * (0.3 * h[(i, j)]).exp() * c[(i, j)]);
        let mut grad_z = Array2::zeros((4, 5));
        act.backward(dphi.view(), grad_h.view(), grad_z.view_mut());
        let mut numeric = Vec::new();
        for idx in 0..z.len() {
            let mut zp = z.clone();
            let e = step(z.as_slice().unwrap()[idx]);
            zp.as_slice_mut().unwrap()[idx] += e;
            let plus = loss(&zp);
            zp.as_slice_mut().unwrap()[idx] -= 2.0 * e;
            numeric.push((plus - loss(&zp)) / (2.0 * e));
        }
        let err = rel_error(grad_z.as_slice().unwrap(), &numeric);
        assert!(err < 1e-8, "{name}: relative error {err}");
    }
}

#[test]
fn every_loss_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let out = randn(&mut rng, (6, 4), 1.5);
    let values = randn(&mut rng, (6, 4), 1.0);
    let probs = Array2::from_shape_fn((6, 4), |(_, j)| [0.1, 0.2, 0.3, 0.4][j]);
    let classes = [0usize, 3, 1, 2, 2, 0];
    for name in Loss::names() {
        let loss = Loss::parse("loss", &name).unwrap();
        let cases = [Targets::Values(values.view()), Targets::Classes(&classes), Targets::Values(probs.view())];
        for target in cases {
            let mut grad = Array2::zeros((6, 4));
            let value = loss.forward_backward(out.view(), target, grad.view_mut());
            assert!((value - loss.value(out.view(), target)).abs() < 1e-12);
            let mut numeric = Vec::new();
            for idx in 0..out.len() {
                let mut o = out.clone();
                let e = step(out.as_slice().unwrap()[idx]);
                o.as_slice_mut().unwrap()[idx] += e;
                let plus = loss.value(o.view(), target);
                o.as_slice_mut().unwrap()[idx] -= 2.0 * e;
                numeric.push((plus - loss.value(o.view(), target)) / (2.0 * e));
            }
            let err = rel_error(grad.as_slice().unwrap(), &numeric);
            assert!(err < 1e-8, "{name} {target:?}: relative error {err}");
        }
    }
}

#[test]
fn linear_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w = randn(&mut rng, (3, 5), 0.5);
    let b = Array1::from_shape_simple_fn(3, || rng.sample::<f64, _>(StandardNormal));
    let x = randn(&mut rng, (7, 5), 1.0);
    let c = randn(&mut rng, (7, 3), 1.0);
    // L = Σ c ⊙ y², so ∂L/∂y = 2 c ⊙ y is non-constant
    let loss = |l: &Linear<f64>, x: &Array2<f64>| {
        let mut y = Array2::zeros((7, 3));
        l.forward(x.view(), y.view_mut(), Threads::One);
        (&y * &y * &c).sum()
    };
    let mut lin = Linear::new(w, b);
    let mut y = Array2::zeros((7, 3));
    lin.forward(x.view(), y.view_mut(), Threads::One);
    let grad_y = 2.0 * &c * &y;
    let mut grad_x = Array2::zeros((7, 5));
    lin.backward(x.view(), grad_y.view(), Some(grad_x.view_mut()), Threads::One);
    // dL/dx
    let mut numeric = Vec::new();
    for idx in 0..x.len() {
        let mut xp = x.clone();
        let e = step(x.as_slice().unwrap()[idx]);
        xp.as_slice_mut().unwrap()[idx] += e;
        let plus = loss(&lin, &xp);
        xp.as_slice_mut().unwrap()[idx] -= 2.0 * e;
        numeric.push((plus - loss(&lin, &xp)) / (2.0 * e));
    }
    assert!(rel_error(grad_x.as_slice().unwrap(), &numeric) < 1e-8);
    // dL/dW
    let mut numeric = Vec::new();
    for idx in 0..lin.weight.len() {
        let mut p = lin.clone();
        let orig = lin.weight.as_slice().unwrap()[idx];
        let e = step(orig);
        p.weight.as_slice_mut().unwrap()[idx] = orig + e;
        let plus = loss(&p, &x);
        p.weight.as_slice_mut().unwrap()[idx] = orig - e;
        numeric.push((plus - loss(&p, &x)) / (2.0 * e));
    }
    assert!(rel_error(lin.grad_weight.as_slice().unwrap(), &numeric) < 1e-8);
    // backward accumulates: a second call doubles the parameter gradients
    let before = lin.grad_weight.clone();
    lin.backward(x.view(), grad_y.view(), None, Threads::One);
    assert!((&lin.grad_weight - &(2.0 * &before)).iter().all(|v| v.abs() < 1e-12));
}

#[test]
fn whole_mlps_of_several_depths() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (depth, act, init, loss) in [
        (0, "identity", "pytorch", "mse"),
        (1, "sigmoid", "pytorch", "sse"),
        (2, "sigmoid", "pytorch", "sse"),
        (3, "tanh", "xavier_normal", "mse"),
        (5, "relu", "kaiming_normal", "cross_entropy"),
        (4, "leaky_relu", "kaiming_uniform", "mse"),
        (3, "elu", "lecun_normal", "cross_entropy"),
        (3, "selu", "lecun_normal", "mse"),
        (4, "gelu", "orthogonal", "cross_entropy"),
        (3, "silu", "gaussian", "sse"),
        (3, "softsign", "xavier_uniform", "mse"),
        (3, "softplus", "gaussian", "cross_entropy"),
        (10, "sigmoid", "pytorch", "mse"),
        (8, "tanh", "gaussian", "cross_entropy"),
    ] {
        let activation = Activation::new(ActivationKind::parse("activation", act).unwrap(), 0.05);
        let mut cfg = MlpConfig::uniform(5, 6, depth, 3, activation, Init::parse("init", init).unwrap());
        cfg.sigma_w2 = 1.5;
        cfg.sigma_b2 = 0.05;
        let mlp = cfg.init::<f64, _>(&mut rng);
        let x = randn(&mut rng, (4, 5), 1.0);
        let y = randn(&mut rng, (4, 3), 1.0);
        let classes = [0usize, 2, 1, 2];
        let loss = Loss::parse("loss", loss).unwrap();
        let target = if loss == Loss::CrossEntropy { Targets::Classes(&classes) } else { Targets::Values(y.view()) };
        for check in check_mlp(&mlp, x.view(), target, loss) {
            // relu-family kinks: a perturbation may cross 0 and bias one entry; 1e-6 leaves room
            let tol = if matches!(act, "relu" | "leaky_relu") { 1e-6 } else { 1e-7 };
            assert!(
                check.passes(tol),
                "depth {depth} {act} {loss:?} {}: rel error {:e}, noise {:e}",
                check.name,
                check.rel_error,
                check.noise
            );
            // the noise allowance matters only for the vanishing layers of the deep sigmoid
            assert!(
                check.noise < 1e-6 || (act == "sigmoid" && depth == 10),
                "{act} {}: noise {:e}",
                check.name,
                check.noise
            );
        }
    }
}

#[test]
fn every_init_builds_a_network_that_checks() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for name in Init::names() {
        let cfg = MlpConfig::uniform(4, 5, 2, 2, Activation::Tanh, Init::parse("init", &name).unwrap());
        let mlp = cfg.init::<f64, _>(&mut rng);
        let x = randn(&mut rng, (3, 4), 1.0);
        let y = randn(&mut rng, (3, 2), 1.0);
        for c in check_mlp(&mlp, x.view(), Targets::Values(y.view()), Loss::Mse) {
            assert!(c.rel_error < 1e-7, "{name} {}: {} (noise {})", c.name, c.rel_error, c.noise);
        }
    }
}

/// Sets every norm layer's γ, β (and batch norm's running estimates) to random values, so that
/// the checks do not rest on γ = 1, β = 0.
fn randomise_norms(mlp: &mut gradscope::nn::Mlp<f64>, rng: &mut ChaCha8Rng) {
    for n in &mut mlp.norms {
        n.weight.mapv_inplace(|_| 0.5 + rng.random::<f64>());
        n.bias.mapv_inplace(|_| rng.sample::<f64, _>(StandardNormal) * 0.3);
        n.running_mean.mapv_inplace(|_| rng.sample::<f64, _>(StandardNormal) * 0.2);
        n.running_var.mapv_inplace(|_| 0.5 + rng.random::<f64>());
    }
}

/// A norm layer alone, L = Σ c ⊙ exp(0.3·y): batch norm in training and in eval mode, layer
/// norm, each with the upstream scale α of a residual branch.
#[test]
fn norm_layers_backward() {
    use gradscope::nn::{Norm, NormKind};
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (kind, training) in [(NormKind::Batch, true), (NormKind::Batch, false), (NormKind::Layer, true)] {
        let (n, d) = (6, 5);
        let mut norm = Norm::<f64>::new(kind, d);
        norm.weight.mapv_inplace(|_| 0.5 + rng.random::<f64>());
        norm.bias.mapv_inplace(|_| rng.random::<f64>() - 0.5);
        norm.running_mean.mapv_inplace(|_| rng.random::<f64>() - 0.5);
        norm.running_var.mapv_inplace(|_| 0.5 + rng.random::<f64>());
        norm.training = training;
        norm.track_running_stats = false;
        let x = randn(&mut rng, (n, d), 2.0) + 0.7;
        let c = randn(&mut rng, (n, d), 1.0);
        let alpha = 0.6;
        let loss = |m: &mut Norm<f64>, x: &Array2<f64>| {
            let mut y = Array2::zeros((n, d));
            m.forward(x.view(), y.view_mut());
            alpha * y.iter().zip(&c).map(|(&y, &c)| (0.3 * y).exp() * c).sum::<f64>()
        };
        let mut y = Array2::zeros((n, d));
        norm.forward(x.view(), y.view_mut());
        // ∂L/∂y without α; backward applies it
        let grad_y = Array2::from_shape_fn((n, d), |(i, j)| 0.3 * (0.3 * y[(i, j)]).exp() * c[(i, j)]);
        let mut grad_x = Array2::zeros((n, d));
        norm.backward(grad_y.view(), alpha, grad_x.view_mut());
        let mut probe = norm.clone();
        let mut numeric = Vec::new();
        for idx in 0..x.len() {
            let mut xp = x.clone();
            let e = step(x.as_slice().unwrap()[idx]);
            xp.as_slice_mut().unwrap()[idx] += e;
            let plus = loss(&mut probe, &xp);
            xp.as_slice_mut().unwrap()[idx] -= 2.0 * e;
            numeric.push((plus - loss(&mut probe, &xp)) / (2.0 * e));
        }
        let err = rel_error(grad_x.as_slice().unwrap(), &numeric);
        assert!(err < 1e-8, "{kind:?} training {training}: ∂L/∂x relative error {err}");
        for (which, analytic) in [("weight", norm.grad_weight.clone()), ("bias", norm.grad_bias.clone())] {
            let mut numeric = Vec::new();
            for j in 0..d {
                let mut p = norm.clone();
                fn param<'a>(p: &'a mut Norm<f64>, which: &str, j: usize) -> &'a mut f64 {
                    if which == "weight" { &mut p.weight[j] } else { &mut p.bias[j] }
                }
                let orig = *param(&mut p, which, j);
                let e = step(orig);
                *param(&mut p, which, j) = orig + e;
                let plus = loss(&mut p, &x);
                *param(&mut p, which, j) = orig - e;
                numeric.push((plus - loss(&mut p, &x)) / (2.0 * e));
            }
            let err = rel_error(analytic.as_slice().unwrap(), &numeric);
            assert!(err < 1e-8, "{kind:?} training {training} {which}: relative error {err}");
        }
    }
}

/// Whole networks with every remedy and combination: residual blocks of one and two layers
/// (with α ≠ 1 and an input projection where widths differ, and without), batch norm in
/// training mode and layer norm, before and after φ, together. Every trainable tensor is
/// checked, γ, β and the projections included.
#[test]
fn whole_mlps_with_remedies() {
    use gradscope::nn::{Arch, NormKind, NormPosition, Residual};
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let res = |block, scale| Some(Residual { block, scale });
    let cases = [
        (5, 3, "sigmoid", res(1, 1.0), None, NormPosition::Pre, "mse"),
        (6, 4, "tanh", res(2, 0.5), None, NormPosition::Pre, "cross_entropy"),
        (6, 5, "relu", res(2, 1.0), None, NormPosition::Pre, "mse"), // odd depth: a last block of one
        (5, 3, "sigmoid", None, Some(NormKind::Batch), NormPosition::Pre, "mse"),
        (5, 3, "tanh", None, Some(NormKind::Batch), NormPosition::Post, "cross_entropy"),
        (5, 3, "sigmoid", None, Some(NormKind::Layer), NormPosition::Pre, "sse"),
        (5, 3, "gelu", None, Some(NormKind::Layer), NormPosition::Post, "mse"),
        (5, 4, "sigmoid", res(2, 1.0), Some(NormKind::Batch), NormPosition::Pre, "mse"),
        (6, 3, "tanh", res(1, 0.7), Some(NormKind::Layer), NormPosition::Post, "cross_entropy"),
        (6, 4, "silu", res(2, 1.3), Some(NormKind::Batch), NormPosition::Post, "sse"),
        (6, 4, "elu", res(1, 1.0), Some(NormKind::Layer), NormPosition::Pre, "mse"),
    ];
    for (inputs, depth, act, residual, norm, norm_position, loss) in cases {
        let activation = Activation::new(ActivationKind::parse("activation", act).unwrap(), 0.05);
        let mut cfg = MlpConfig::uniform(inputs, 6, depth, 3, activation, Init::Pytorch);
        cfg.arch = Arch { residual, norm, norm_position };
        let mut mlp = cfg.init::<f64, _>(&mut rng);
        randomise_norms(&mut mlp, &mut rng);
        let x = randn(&mut rng, (7, inputs), 1.0);
        let y = randn(&mut rng, (7, 3), 1.0);
        let classes = [0usize, 2, 1, 2, 0, 1, 1];
        let loss = Loss::parse("loss", loss).unwrap();
        let target = if loss == Loss::CrossEntropy { Targets::Classes(&classes) } else { Targets::Values(y.view()) };
        let checks = check_mlp(&mlp, x.view(), target, loss);
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        if norm.is_some() {
            assert!(names.contains(&"norms.0.weight") && names.contains(&"norms.0.bias"), "{names:?}");
        }
        if residual.is_some() && inputs != 6 {
            assert!(names.contains(&"shortcuts.0.weight"), "{names:?}");
        }
        for check in checks {
            let tol = if act == "relu" { 1e-6 } else { 1e-7 };
            assert!(
                check.passes(tol),
                "{act} {residual:?} {norm:?} {norm_position:?} {}: rel error {:e}, noise {:e}",
                check.name,
                check.rel_error,
                check.noise
            );
        }
    }
}

/// Eval-mode batch norm is a fixed affine map of the running estimates: its gradients check too.
#[test]
fn batch_norm_network_in_eval_mode() {
    use gradscope::nn::{Arch, NormKind, NormPosition, Residual};
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut cfg = MlpConfig::uniform(4, 5, 3, 2, Activation::Tanh, Init::Pytorch);
    cfg.arch = Arch {
        residual: Some(Residual { block: 1, scale: 1.0 }),
        norm: Some(NormKind::Batch),
        norm_position: NormPosition::Pre,
    };
    let mut mlp = cfg.init::<f64, _>(&mut rng);
    randomise_norms(&mut mlp, &mut rng);
    mlp.set_training(false);
    let x = randn(&mut rng, (1, 4), 1.0); // one row is fine in eval mode
    let y = randn(&mut rng, (1, 2), 1.0);
    for c in check_mlp(&mlp, x.view(), Targets::Values(y.view()), Loss::Mse) {
        assert!(c.passes(1e-7), "{}: {} (noise {})", c.name, c.rel_error, c.noise);
    }
}
