//! Gradient clipping (Pascanu et al. 2013), as `torch.nn.utils.clip_grad_norm_` and
//! `clip_grad_value_` compute it, over every trainable tensor of the network:
//!
//! ```text
//! by norm    total = ‖(‖g₁‖, ‖g₂‖, …)‖₂ = √(Σ g²) over all parameters
//!            coef  = max_norm / (total + 1e-6);  every g ← coef·g when coef < 1
//! by value   every entry g ← clamp(g, −v, v)
//! ```

use crate::nn::{Network, Scalar};

/// How gradients are clipped between the backward pass and the update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Clip {
    /// Not at all.
    #[default]
    None,
    /// Rescale all gradients together when their total L2 norm exceeds this.
    Norm(f64),
    /// Clamp every gradient entry to [−v, v].
    Value(f64),
}

/// What clipping did at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clipped {
    /// The total L2 norm of every parameter gradient before clipping.
    pub total_norm: f64,
    /// Whether any gradient was changed.
    pub clipped: bool,
}

impl Clip {
    /// True for [`Clip::None`].
    pub fn is_none(&self) -> bool {
        *self == Clip::None
    }

    /// Clips `net`'s gradients in place; `None` when clipping is off (nothing is measured then).
    pub fn apply<F: Scalar, N: Network<F>>(&self, net: &mut N) -> Option<Clipped> {
        if self.is_none() {
            return None;
        }
        let mut sq = 0.0f64;
        net.for_each_param(|_, _, _, g| sq += g.iter().map(|&v| v.f64() * v.f64()).sum::<f64>());
        let total_norm = sq.sqrt();
        let clipped = match *self {
            Clip::None => false,
            Clip::Norm(max_norm) => {
                // torch forms the coefficient in the gradients' dtype
                let coef = F::of(max_norm) / (F::of(total_norm) + F::of(1e-6));
                let clip = coef < F::one();
                if clip {
                    net.for_each_param(|_, _, _, g| g.iter_mut().for_each(|v| *v *= coef));
                }
                clip
            }
            Clip::Value(v) => {
                let (lo, hi) = (F::of(-v), F::of(v));
                let mut any = false;
                net.for_each_param(|_, _, _, g| {
                    for x in g.iter_mut() {
                        let c = x.max(lo).min(hi);
                        any |= c != *x;
                        *x = c;
                    }
                });
                any
            }
        };
        Some(Clipped { total_norm, clipped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Activation, Init, Loss, Mlp, MlpConfig, Targets, Threads};
    use ndarray::Array2;
    use rand::SeedableRng;

    fn net_with_grads() -> Mlp<f64> {
        let cfg = MlpConfig::uniform(3, 4, 2, 2, Activation::Tanh, Init::Pytorch);
        let mut mlp = cfg.init::<f64, _>(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i as f64 - 2.0) * (j as f64 + 0.5));
        let y = Array2::from_shape_fn((5, 2), |(i, j)| (i + j) as f64);
        mlp.loss_and_grads(x.view(), Targets::Values(y.view()), Loss::Sse, Threads::One);
        mlp
    }

    fn grads(mlp: &mut Mlp<f64>) -> Vec<f64> {
        let mut v = Vec::new();
        mlp.for_each_param(|_, _, _, g| v.extend_from_slice(g));
        v
    }

    #[test]
    fn by_norm_rescales_to_the_limit_and_only_above_it() {
        let mut mlp = net_with_grads();
        let before = grads(&mut mlp);
        let total = before.iter().map(|g| g * g).sum::<f64>().sqrt();
        assert!(total > 1.0);
        // above the norm: nothing changes
        let c = Clip::Norm(total * 2.0).apply(&mut mlp).unwrap();
        assert!(!c.clipped && (c.total_norm - total).abs() < 1e-12 * total);
        assert_eq!(grads(&mut mlp), before);
        // below: every gradient scaled by max/(total + 1e-6), the same direction
        let c = Clip::Norm(1.0).apply(&mut mlp).unwrap();
        assert!(c.clipped && (c.total_norm - total).abs() < 1e-12 * total);
        let after = grads(&mut mlp);
        let coef = 1.0 / (total + 1e-6);
        assert!(after.iter().zip(&before).all(|(a, b)| (a - coef * b).abs() < 1e-15));
        let new_total = after.iter().map(|g| g * g).sum::<f64>().sqrt();
        assert!((new_total - 1.0).abs() < 1e-5, "{new_total}");
        assert_eq!(Clip::None.apply(&mut mlp), None);
    }

    #[test]
    fn by_value_clamps_each_entry() {
        let mut mlp = net_with_grads();
        let before = grads(&mut mlp);
        let v = 0.1;
        assert!(before.iter().any(|g| g.abs() > v));
        let c = Clip::Value(v).apply(&mut mlp).unwrap();
        assert!(c.clipped);
        let after = grads(&mut mlp);
        for (a, b) in after.iter().zip(&before) {
            assert_eq!(*a, b.clamp(-v, v));
        }
        let c = Clip::Value(1e9).apply(&mut mlp).unwrap();
        assert!(!c.clipped);
    }
}
