//! Finite-difference gradient checks in f64.
//!
//! Central differences `(L(θ + h) − L(θ − h)) / 2h` with `h = ε^(1/3)·max(1, |θ|)`, one entry at a
//! time: perturb, evaluate, restore (as argmin's `finitediff` does); see `numeric_grad` for
//! vanishing gradients. A tensor passes when the
//! difference between the analytic and the numeric gradient is small relative to the larger of
//! the two: ‖g_analytic − g_numeric‖ ≤ tol·max(‖g_analytic‖, ‖g_numeric‖) (Frobenius norms).

use crate::nn::{Loss, Mlp, Network, Targets, Threads};
use ndarray::{Array2, ArrayView2};

/// The step used for central differences of an entry of size `x`.
pub fn step(x: f64) -> f64 {
    f64::EPSILON.cbrt() * x.abs().max(1.0)
}

/// The result of checking one tensor.
#[derive(Clone, Debug)]
pub struct TensorCheck {
    /// The tensor's name (`layers.0.weight`, `input`, …).
    pub name: String,
    /// ‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖), 0 when both vanish.
    pub rel_error: f64,
    /// ‖numeric‖, to tell a vanishing gradient from a wrong one.
    pub norm: f64,
    /// The numeric gradient's rounding noise relative to its norm: agreement better than this
    /// cannot be asked of finite differences in f64 (large only for vanishing gradients).
    pub noise: f64,
}

/// Relative error between two gradients in Frobenius norm.
pub fn rel_error(analytic: &[f64], numeric: &[f64]) -> f64 {
    let diff = analytic.iter().zip(numeric).map(|(a, n)| (a - n) * (a - n)).sum::<f64>().sqrt();
    let scale =
        analytic.iter().map(|a| a * a).sum::<f64>().sqrt().max(numeric.iter().map(|n| n * n).sum::<f64>().sqrt());
    if scale == 0.0 { 0.0 } else { diff / scale }
}

/// Central differences of `eval` at `values`, entry by entry.
///
/// A vanishing gradient (the very thing gradscope studies) changes the loss by less than its
/// rounding noise ε·|L| at the usual step, so the step grows tenfold (up to 0.1) until the
/// differences stand 10⁴× above that noise. The truncation error, O(h²·∂³L), vanishes along
/// with the gradient it belongs to, so the larger step stays accurate.
///
/// Returns the gradient and its rounding noise: ε·|L|/h per entry, √n·ε·|L|/h in norm.
pub fn numeric_grad(values: &mut [f64], mut eval: impl FnMut(&[f64]) -> f64) -> (Vec<f64>, f64) {
    let noise = f64::EPSILON * eval(values).abs().max(f64::MIN_POSITIVE);
    let mut scale = 1.0;
    loop {
        let grad: Vec<f64> = (0..values.len())
            .map(|i| {
                let orig = values[i];
                let h = step(orig) * scale;
                values[i] = orig + h;
                let plus = eval(values);
                values[i] = orig - h;
                let minus = eval(values);
                values[i] = orig;
                (plus - minus) / (2.0 * h)
            })
            .collect();
        let largest_change = grad.iter().map(|g| g.abs()).fold(0.0, f64::max) * step(1.0) * scale;
        if largest_change > 1e4 * noise || scale >= 0.1 / step(1.0) {
            let noise_norm = (values.len() as f64).sqrt() * noise / (step(1.0) * scale);
            return (grad, noise_norm);
        }
        scale *= 10.0;
    }
}

/// Checks the gradient of every trainable tensor (linear layers, norm layers' γ and β,
/// residual projections; named as in `weights.safetensors`) and ∂L/∂x of a whole network
/// against central differences, in the network's mode (training-mode batch norm: the loss is a
/// deterministic function of the whole batch).
pub fn check_mlp(mlp: &Mlp<f64>, x: ArrayView2<f64>, target: Targets<f64>, loss: Loss) -> Vec<TensorCheck> {
    check_mlp_on(mlp, x, target, loss, Threads::One)
}

/// [`check_mlp`] with the analytic gradients of a step on `threads` (call it inside a rayon
/// pool of that many threads); the numeric ones are the same.
pub fn check_mlp_on(
    mlp: &Mlp<f64>,
    x: ArrayView2<f64>,
    target: Targets<f64>,
    loss: Loss,
    threads: Threads,
) -> Vec<TensorCheck> {
    let mut net = mlp.clone();
    net.want_input_grad = true;
    net.loss_and_grads(x, target, loss, threads);
    let mut analytic: Vec<(String, Vec<f64>)> = Vec::new();
    net.for_each_param(|name, _, _, g| analytic.push((name.to_string(), g.to_vec())));
    let mut probe = mlp.clone();
    probe.set_track_running_stats(false);
    let eval = |p: &mut Mlp<f64>, x: ArrayView2<f64>| {
        p.forward(x, Threads::One);
        loss.value(p.output(), target)
    };
    let mut out = Vec::new();
    for (k, (name, grad)) in analytic.into_iter().enumerate() {
        let mut values = param_values(&mut probe, k);
        let original = values.clone();
        let (numeric, noise) = numeric_grad(&mut values, |v| {
            set_param(&mut probe, k, v);
            eval(&mut probe, x)
        });
        set_param(&mut probe, k, &original); // restore exactly
        out.push(tensor_check(name, &grad, &numeric, noise));
    }
    let mut xs: Vec<f64> = x.iter().copied().collect();
    let shape = x.dim();
    let (numeric, noise) = numeric_grad(&mut xs, |v| {
        let xv = Array2::from_shape_vec(shape, v.to_vec()).expect("same shape");
        eval(&mut probe, xv.view())
    });
    let analytic: Vec<f64> = net.grad_input().iter().copied().collect();
    out.push(tensor_check("input".into(), &analytic, &numeric, noise));
    out
}

/// The values of the `k`-th trainable tensor (in [`Network::for_each_param`] order).
fn param_values(net: &mut Mlp<f64>, k: usize) -> Vec<f64> {
    let (mut i, mut out) = (0, Vec::new());
    net.for_each_param(|_, _, p, _| {
        if i == k {
            out = p.to_vec();
        }
        i += 1;
    });
    out
}

/// Overwrites the `k`-th trainable tensor.
fn set_param(net: &mut Mlp<f64>, k: usize, values: &[f64]) {
    let mut i = 0;
    net.for_each_param(|_, _, p, _| {
        if i == k {
            p.copy_from_slice(values);
        }
        i += 1;
    });
}

fn tensor_check(name: String, analytic: &[f64], numeric: &[f64], noise: f64) -> TensorCheck {
    let n = norm(numeric);
    TensorCheck { name, rel_error: rel_error(analytic, numeric), norm: n, noise: noise / n.max(f64::MIN_POSITIVE) }
}

impl TensorCheck {
    /// Passes when the relative error is below `tol` plus 100 times the numeric noise (the
    /// noise estimate counts one rounding of L; the forward pass adds a few per layer).
    pub fn passes(&self, tol: f64) -> bool {
        self.rel_error <= tol + 100.0 * self.noise
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}
