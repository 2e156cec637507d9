//! Finite-difference gradient checks of a recurrent network in f64, tensor by tensor, and of
//! ∂L/∂x (see `nn::gradcheck` for the step and the tolerance).
//!
//! With truncated BPTT the analytic gradient is not the gradient of the loss: it is the
//! gradient of [`RecurrentNet::forward_detached`]'s loss at the recorded boundary states, so
//! that is the function differenced.

use super::RecurrentNet;
use crate::nn::gradcheck::{TensorCheck, numeric_grad, rel_error};
use crate::nn::{Loss, Network, Targets, Threads};
use ndarray::{Array3, ArrayView3};

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn tensor_check(name: String, analytic: &[f64], numeric: &[f64], noise: f64) -> TensorCheck {
    let n = norm(numeric);
    TensorCheck { name, rel_error: rel_error(analytic, numeric), norm: n, noise: noise / n.max(f64::MIN_POSITIVE) }
}

/// Checks every trainable tensor (named by its state_dict key) and ∂L/∂x (`input`).
pub fn check_recurrent(
    net: &RecurrentNet<f64>,
    x: ArrayView3<f64>,
    target: Targets<f64>,
    loss: Loss,
) -> Vec<TensorCheck> {
    let mut n = net.clone();
    n.want_input_grad = true;
    n.zero_grad();
    n.loss_and_grads(x, target, loss, Threads::One);
    let mut analytic: Vec<(String, Vec<f64>)> = Vec::new();
    n.for_each_param(|name, _, _, g| analytic.push((name.to_string(), g.to_vec())));
    let states = net.bptt.map(|k| (k, n.boundary_states(k)));
    let eval = |p: &mut RecurrentNet<f64>, x: ArrayView3<f64>| {
        match &states {
            Some((k, s)) => p.forward_detached(x, *k, s, Threads::One),
            None => p.forward(x, Threads::One),
        };
        loss.value(p.output(), target)
    };
    let mut probe = net.clone();
    let mut out = Vec::new();
    for (k, (name, grad)) in analytic.into_iter().enumerate() {
        let mut values = values_of(&mut probe, k);
        let original = values.clone();
        let (numeric, noise) = numeric_grad(&mut values, |v| {
            set(&mut probe, k, v);
            eval(&mut probe, x)
        });
        set(&mut probe, k, &original);
        out.push(tensor_check(name, &grad, &numeric, noise));
    }
    let mut xs: Vec<f64> = x.iter().copied().collect();
    let shape = x.dim();
    let (numeric, noise) = numeric_grad(&mut xs, |v| {
        let xv = Array3::from_shape_vec(shape, v.to_vec()).expect("same shape");
        eval(&mut probe, xv.view())
    });
    let analytic: Vec<f64> = n.grad_input().iter().copied().collect();
    out.push(tensor_check("input".into(), &analytic, &numeric, noise));
    out
}

fn values_of(net: &mut RecurrentNet<f64>, k: usize) -> Vec<f64> {
    let (mut i, mut out) = (0, Vec::new());
    net.for_each_param(|_, _, v, _| {
        if i == k {
            out = v.to_vec();
        }
        i += 1;
    });
    out
}

fn set(net: &mut RecurrentNet<f64>, k: usize, values: &[f64]) {
    let mut i = 0;
    net.for_each_param(|_, _, v, _| {
        if i == k {
            v.copy_from_slice(values);
        }
        i += 1;
    });
}
