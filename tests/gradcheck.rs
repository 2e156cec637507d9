//! Finite-difference gradient checks in f64 of every activation, loss and layer, and of whole
//! MLPs of several depths: the chain rule in `Mlp::backward` against central differences.

use gradscope::nn::gradcheck::{check_mlp, rel_error, step};
use gradscope::nn::{
    ACTIVATION_NAMES, Activation, INIT_NAMES, Init, LOSS_NAMES, Linear, Loss, MlpConfig, Targets, Threads,
};
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
    for name in ACTIVATION_NAMES {
        let act = Activation::from_name(name, 0.07).unwrap();
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
    for name in LOSS_NAMES {
        let loss = Loss::from_name(name).unwrap();
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
        let activation = Activation::from_name(act, 0.05).unwrap();
        let mut cfg = MlpConfig::uniform(5, 6, depth, 3, activation, Init::from_name(init).unwrap());
        cfg.sigma_w2 = 1.5;
        cfg.sigma_b2 = 0.05;
        let mlp = cfg.init::<f64, _>(&mut rng);
        let x = randn(&mut rng, (4, 5), 1.0);
        let y = randn(&mut rng, (4, 3), 1.0);
        let classes = [0usize, 2, 1, 2];
        let loss = Loss::from_name(loss).unwrap();
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
    for name in INIT_NAMES {
        let cfg = MlpConfig::uniform(4, 5, 2, 2, Activation::Tanh, Init::from_name(name).unwrap());
        let mlp = cfg.init::<f64, _>(&mut rng);
        let x = randn(&mut rng, (3, 4), 1.0);
        let y = randn(&mut rng, (3, 2), 1.0);
        for c in check_mlp(&mlp, x.view(), Targets::Values(y.view()), Loss::Mse) {
            assert!(c.rel_error < 1e-7, "{name} {}: {} (noise {})", c.name, c.rel_error, c.noise);
        }
    }
}
