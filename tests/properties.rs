//! Property tests of the chain rule's building blocks.

use gradscope::nn::{Activation, Linear, Threads};
use ndarray::Array2;
use proptest::prelude::*;

proptest! {
    /// The lecture's premise: σ′ ≤ 1/4 and tanh′ ≤ 1 everywhere, so each sigmoid layer can only
    /// shrink a gradient's size by its derivative factor.
    #[test]
    fn sigmoid_and_tanh_derivatives_are_bounded(z in -1e3f64..1e3) {
        let s = Activation::Sigmoid.df(z);
        prop_assert!((0.0..=0.25).contains(&s));
        let t = Activation::Tanh.df(z);
        prop_assert!((0.0..=1.0).contains(&t));
        prop_assert!((0.0..=0.25).contains(&Activation::Sigmoid.df(z as f32)));
    }

    #[test]
    fn derivative_from_output_equals_derivative(z in -30f64..30.0) {
        for a in [Activation::Sigmoid, Activation::Tanh] {
            prop_assert!((a.df_given_output(z, a.f(z)) - a.df(z)).abs() < 1e-15);
        }
    }

    /// ∂L/∂x has x's shape and is linear in ∂L/∂y; two backwards double the parameter gradients.
    #[test]
    fn linear_backward_is_linear(
        rows in 1usize..6, fan_in in 1usize..6, fan_out in 1usize..6, seed in 0u64..1000, a in -3f64..3.0
    ) {
        let val = |i: usize| ((i as f64 + seed as f64) * 0.7319).sin();
        let w = Array2::from_shape_fn((fan_out, fan_in), |(i, j)| val(i * 7 + j));
        let b = ndarray::Array1::from_shape_fn(fan_out, |i| val(100 + i));
        let x = Array2::from_shape_fn((rows, fan_in), |(i, j)| val(200 + i * 5 + j));
        let g1 = Array2::from_shape_fn((rows, fan_out), |(i, j)| val(300 + i * 3 + j));
        let g2 = Array2::from_shape_fn((rows, fan_out), |(i, j)| val(400 + i * 3 + j));
        let mut lin = Linear::new(w, b);
        let back = |lin: &mut Linear<f64>, g: &Array2<f64>| {
            let mut gx = Array2::zeros((rows, fan_in));
            lin.backward(x.view(), g.view(), Some(gx.view_mut()), Threads::One);
            gx
        };
        let x1 = back(&mut lin, &g1);
        let x2 = back(&mut lin, &g2);
        prop_assert_eq!(x1.dim(), x.dim());
        let combo = &g1 * a + &g2;
        let xc = back(&mut lin, &combo);
        let want = &x1 * a + &x2;
        prop_assert!((&xc - &want).iter().all(|d| d.abs() < 1e-12));
        lin.zero_grad();
        back(&mut lin, &g1);
        let once = lin.grad_weight.clone();
        back(&mut lin, &g1);
        prop_assert!((&lin.grad_weight - &(&once * 2.0)).iter().all(|d| d.abs() < 1e-12));
    }
}
