//! Optimizers: an update rule plus per-parameter state kept apart from the model.
//!
//! The rules are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`, single-tensor code path), in the
//! same order of floating-point operations, so that runs can be compared with PyTorch's.

mod adam;
mod clip;
mod sgd;

pub use adam::{Adam, AdamState};
pub use clip::{Clip, Clipped};
pub use sgd::{Sgd, SgdState};

use crate::nn::kernel::LANES;
use crate::nn::{Network, Scalar};

/// Which update rule, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with optional momentum and Nesterov momentum.
    Sgd,
    /// Adam with L2 weight decay added to the gradient.
    Adam,
    /// Adam with decoupled weight decay (`torch.optim.AdamW`).
    #[serde(rename = "adamw")]
    #[value(name = "adamw")]
    AdamW,
}

impl OptimizerKind {
    /// PyTorch's default learning rate (SGD has none in PyTorch; gradscope uses 0.01).
    pub fn default_lr(&self) -> f64 {
        match self {
            Self::Sgd => 0.01,
            Self::Adam | Self::AdamW => 1e-3,
        }
    }

    /// PyTorch's default weight decay.
    pub fn default_weight_decay(&self) -> f64 {
        match self {
            Self::Sgd | Self::Adam => 0.0,
            Self::AdamW => 0.01,
        }
    }
}

/// An update rule with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// See [`Sgd`].
    Sgd(Sgd),
    /// See [`Adam`] (also AdamW, with `decoupled = true`).
    Adam(Adam),
}

/// The state an optimizer keeps for one parameter tensor.
#[derive(Clone, Debug)]
pub enum ParamState<F> {
    /// See [`SgdState`].
    Sgd(SgdState<F>),
    /// See [`AdamState`].
    Adam(AdamState<F>),
}

impl<F> ParamState<F> {
    /// The per-entry buffers, named as PyTorch's `optimizer.state_dict()` names them
    /// (`momentum_buffer`; `exp_avg`, `exp_avg_sq`). An SGD momentum buffer is empty before the
    /// first step. Checkpoints save and restore every buffer listed here.
    pub fn buffers(&self) -> Vec<(&'static str, &Vec<F>)> {
        match self {
            Self::Sgd(s) => vec![("momentum_buffer", &s.momentum_buffer)],
            Self::Adam(s) => vec![("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)],
        }
    }

    /// [`ParamState::buffers`], writable, in the same order.
    pub fn buffers_mut(&mut self) -> Vec<(&'static str, &mut Vec<F>)> {
        match self {
            Self::Sgd(s) => vec![("momentum_buffer", &mut s.momentum_buffer)],
            Self::Adam(s) => vec![("exp_avg", &mut s.exp_avg), ("exp_avg_sq", &mut s.exp_avg_sq)],
        }
    }

    /// The integer counters (Adam's `step`), saved and restored with the buffers.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        match self {
            Self::Sgd(_) => Vec::new(),
            Self::Adam(s) => vec![("step", s.step)],
        }
    }

    /// [`ParamState::counters`], writable.
    pub fn counters_mut(&mut self) -> Vec<(&'static str, &mut u64)> {
        match self {
            Self::Sgd(_) => Vec::new(),
            Self::Adam(s) => vec![("step", &mut s.step)],
        }
    }
}

/// An optimizer bound to the parameters of one network: the rule and one state per tensor.
#[derive(Clone, Debug)]
pub struct OptimizerState<F> {
    /// The rule.
    pub rule: Optimizer,
    /// One state per trainable tensor, in the order of [`Network::for_each_param`] (weight₀, bias₀,
    /// then layer 0's norm γ, β and residual projection, if any; weight₁, …).
    pub states: Vec<ParamState<F>>,
    /// Norms measured by the last [`OptimizerState::step_measured`].
    pub norms: ParamNorms,
}

/// Per linear layer: ‖W‖, ‖∂L/∂W‖ (before the update) and ‖ΔW‖ of the update, if one was made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamNorms {
    /// ‖W_l‖_F before the update.
    pub weight: Vec<f64>,
    /// ‖∂L/∂W_l‖_F.
    pub grad: Vec<f64>,
    /// ‖ΔW_l‖_F of the update; `None` when no update was made.
    pub update: Option<Vec<f64>>,
}

impl ParamNorms {
    /// Measures ‖W‖ and ‖∂L/∂W‖ directly (no update made), for every tensor
    /// [`Network::measures`] picks (an MLP's linear layers' weights).
    pub fn of<F: Scalar, N: Network<F>>(net: &N) -> Self {
        // the same summation as the optimizer's measured loop, so that a probe with and without
        // an update (or before and after clipping) records the same bits for the same gradient
        let norm = |a: &[F]| crate::nn::simd::sum_sq_split(a).sqrt();
        let mut out = Self::default();
        net.visit(&mut |t| {
            if let (true, Some(g)) = (N::measures(t.name, t.kind), t.grad) {
                out.weight.push(norm(t.value));
                out.grad.push(norm(g));
            }
        });
        out
    }
}

impl<F: Scalar> OptimizerState<F> {
    /// Fresh state (zero moments) for `mlp`'s parameters.
    pub fn new<N: Network<F>>(rule: Optimizer, net: &N) -> Self {
        let states = net
            .param_lens()
            .into_iter()
            .map(|n| match rule {
                Optimizer::Sgd(_) => ParamState::Sgd(SgdState::new(n)),
                Optimizer::Adam(_) => ParamState::Adam(AdamState::new(n)),
            })
            .collect();
        let zeros = vec![0.0; net.measured_count()];
        let norms = ParamNorms { weight: zeros.clone(), grad: zeros.clone(), update: Some(zeros) };
        Self { rule, states, norms }
    }

    /// Applies one update with learning rate `lr` to every parameter of `net` from its gradients.
    pub fn step<N: Network<F>>(&mut self, net: &mut N, lr: f64) {
        self.apply(net, lr, false);
    }

    /// [`OptimizerState::step`], also measuring ‖W_l‖, ‖∂L/∂W_l‖ and ‖ΔW_l‖ into `norms` (from the
    /// values actually written, so that probes need no copy of the old weights).
    pub fn step_measured<N: Network<F>>(&mut self, net: &mut N, lr: f64) {
        self.apply(net, lr, true);
    }

    fn apply<N: Network<F>>(&mut self, net: &mut N, lr: f64, measure: bool) {
        let mut states = self.states.iter_mut();
        let (rule, norms) = (self.rule, &mut self.norms);
        let mut l = 0; // the record layer of the next measured tensor (they come in order)
        net.for_each_param(|name, kind, p, g| {
            let state = states.next().expect("gradscope internal error: one optimizer state per tensor");
            let measured = measure && N::measures(name, kind);
            let [du, w2, g2] = update(rule, lr, p, g, state, measured);
            if measured {
                norms.weight[l] = w2.sqrt();
                norms.grad[l] = g2.sqrt();
                norms.update.get_or_insert_with(Vec::new)[l] = du.sqrt();
                l += 1;
            }
        });
    }
}

/// `θ ← f(θ, g, s₁, s₂)` for every entry, with up to two per-entry state slices (pass empty
/// slices when the rule keeps none); when `measure` is set, returns
/// `[‖θ_new − θ_old‖², ‖θ_old‖², ‖g‖²]` (else zeros): the probes' norms come from this loop,
/// which reads θ and g anyway, instead of a second trip through memory.
///
/// The loop walks fixed-size chunks of zipped slices (no indexing), so that it vectorises; the
/// squares are taken and summed in 16 f64 lanes, exactly as [`crate::nn::kernel::sum_sq`] does
/// (an f32 square of a vanishing gradient underflows to 0). A single f64 accumulator would
/// serialise the loop (measured: the update took 4× longer, 10 % of a 50-layer step).
#[inline(always)]
pub(crate) fn apply_update<F: Scalar>(
    param: &mut [F],
    grad: &[F],
    s1: &mut [F],
    s2: &mut [F],
    measure: bool,
    f: impl Fn(F, F, &mut F, &mut F) -> F,
) -> [f64; 3] {
    let n = param.len();
    let (mut d1, mut d2) = ([F::zero(); LANES], [F::zero(); LANES]);
    let with_state = |s: &mut [F]| !s.is_empty();
    let (has1, has2) = (with_state(s1), with_state(s2));
    let mut total = [0.0f64; 3];
    let mut lanes = [[0.0f64; LANES]; 3];
    let mut i = 0;
    while i + LANES <= n {
        let (p, g) = (&mut param[i..i + LANES], &grad[i..i + LANES]);
        let a: &mut [F] = if has1 { &mut s1[i..i + LANES] } else { &mut d1 };
        let b: &mut [F] = if has2 { &mut s2[i..i + LANES] } else { &mut d2 };
        for j in 0..LANES {
            let old = p[j];
            p[j] = f(old, g[j], &mut a[j], &mut b[j]);
            if measure {
                let (d, w, gj) = ((p[j] - old).f64(), old.f64(), g[j].f64());
                lanes[0][j] += d * d;
                lanes[1][j] += w * w;
                lanes[2][j] += gj * gj;
            }
        }
        i += LANES;
    }
    for k in i..n {
        let (mut x, mut y) = (F::zero(), F::zero());
        let a = if has1 { &mut s1[k] } else { &mut x };
        let b = if has2 { &mut s2[k] } else { &mut y };
        let old = param[k];
        param[k] = f(old, grad[k], a, b);
        let d = (param[k] - old).f64();
        total[0] += d * d;
        total[1] += old.f64() * old.f64();
        total[2] += grad[k].f64() * grad[k].f64();
    }
    if !measure {
        return [0.0; 3];
    }
    for (t, l) in total.iter_mut().zip(&lanes) {
        *t += l.iter().fold(0.0f64, |s, &v| s + v);
    }
    total
}

fn update<F: Scalar>(
    rule: Optimizer,
    lr: f64,
    param: &mut [F],
    grad: &[F],
    state: &mut ParamState<F>,
    measure: bool,
) -> [f64; 3] {
    match (rule, state) {
        (Optimizer::Sgd(r), ParamState::Sgd(s)) => r.step(F::of(lr), param, grad, s, measure),
        (Optimizer::Adam(r), ParamState::Adam(s)) => r.step(lr, param, grad, s, measure),
        _ => unreachable!("gradscope internal error: optimizer state does not match its rule"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain SGD's measured update (`simd::sgd_measured`, its own loop, cloned per instruction
    /// set) has the bits of `apply_update`'s: the parameters and the three sums, for lengths
    /// around the lanes and long ones, f32 and f64.
    #[test]
    fn measured_plain_sgd_has_the_bits_of_the_generic_loop() {
        fn check<F: Scalar>() {
            for n in [0, 1, 15, 16, 17, 33, 1000, 4099] {
                let p0: Vec<F> = (0..n).map(|i| F::of((i as f64 * 0.731).sin() * 3.0)).collect();
                let g: Vec<F> = (0..n).map(|i| F::of((i as f64 * 0.177).cos() * 1e-3)).collect();
                let lr = F::of(0.05);
                let (mut a, mut b) = (p0.clone(), p0.clone());
                let generic = apply_update(&mut a, &g, &mut [], &mut [], true, |p, g, _, _| p - lr * g);
                let own = crate::nn::simd::sgd_measured(&mut b, &g, lr);
                let bits = |v: &[F]| v.iter().map(|x| x.f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&a), bits(&b), "{} n={n}: parameters", F::NAME);
                assert_eq!(generic.map(f64::to_bits), own.map(f64::to_bits), "{} n={n}: sums", F::NAME);
                assert!(n < 16 || own.iter().all(|&s| s > 0.0));
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn norms_of_subnormal_gradients_are_not_zero_and_agree_with_the_update_loop() {
        // 37 entries: two chunks of 16 and a tail; 2e-43 is subnormal in f32, its f32 square 0
        let g: Vec<f32> = (0..37).map(|i| 2e-43 * (1 + i % 5) as f32).collect();
        let sq = crate::nn::kernel::sum_sq::<_, false>(&g);
        assert!(sq > 0.0);
        let exact: f64 = g.iter().map(|&x| x as f64 * x as f64).sum();
        assert!((sq - exact).abs() <= 1e-12 * exact, "{sq} vs {exact}");
        let mut p = vec![1.0f32; 37];
        let [_, w2, g2] = apply_update(&mut p, &g, &mut [], &mut [], true, |p, g, _, _| p - g);
        assert_eq!(g2.to_bits(), sq.to_bits());
        assert_eq!(w2, 37.0);
    }

    #[test]
    fn sgd_momentum_nesterov_by_hand() {
        // torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.5), p = 2, grads 1 then 3:
        // step 1: g = 1 + 0.5·2 = 2, b = 2, g = 2 + 0.9·2 = 3.8, p = 2 − 0.38 = 1.62
        // step 2: g = 3 + 0.5·1.62 = 3.81, b = 0.9·2 + 3.81 = 5.61, g = 3.81 + 0.9·5.61 = 8.859,
        //         p = 1.62 − 0.8859 = 0.7341
        let rule = Sgd { momentum: 0.9, nesterov: true, weight_decay: 0.5 };
        let mut p = [2.0f64];
        let mut s = SgdState::new(1);
        rule.step(0.1, &mut p, &[1.0], &mut s, false);
        assert!((p[0] - 1.62).abs() < 1e-12);
        rule.step(0.1, &mut p, &[3.0], &mut s, false);
        assert!((p[0] - 0.7341).abs() < 1e-12, "{}", p[0]);
    }

    #[test]
    fn adam_and_adamw_by_hand() {
        // Adam's first step moves each entry by lr·g/(|g| + ε') ≈ lr, whatever the scale of g.
        let rule = Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decoupled: false };
        let mut p = [1.0f64, 1.0];
        let mut s = AdamState::new(2);
        rule.step(0.01, &mut p, &[1e-3, -50.0], &mut s, false);
        assert!((p[0] - 0.99).abs() < 1e-7 && (p[1] - 1.01).abs() < 1e-9, "{p:?}");
        // second step by the formula: m = 0.9·m + 0.1·g, v = 0.999·v + 0.001·g²
        let (g1, g2) = (1e-3f64, 2e-3f64);
        let m = 0.9 * (0.1 * g1) + 0.1 * g2;
        let v = 0.999 * (0.001 * g1 * g1) + 0.001 * g2 * g2;
        let p0 = 1.0 - 0.01 * g1 / (g1 + 1e-8); // the first step, exactly
        assert_eq!(p[0], p0);
        let want = p0 - 0.01 / (1.0 - 0.81) * m / (v.sqrt() / (1.0 - 0.999f64.powi(2)).sqrt() + 1e-8);
        let [du, w2, gg] = rule.step(0.01, &mut p, &[g2, -50.0], &mut s, true);
        assert!(du > 0.0 && w2 > 1.9 && gg > 2499.0);
        assert!((p[0] - want).abs() < 1e-12, "{} vs {want}", p[0]);
        // AdamW decays the weight first: p·(1 − lr·λ), then the Adam step
        let w = Adam { weight_decay: 0.1, decoupled: true, ..rule };
        let mut p = [2.0f64];
        w.step(0.01, &mut p, &[1.0], &mut AdamState::new(1), false);
        assert!((p[0] - (2.0 * (1.0 - 0.001) - 0.01 / (1.0 + 1e-8))).abs() < 1e-12);
    }
}
