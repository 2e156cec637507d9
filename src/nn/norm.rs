//! Normalisation layers as PyTorch defines them: `torch.nn.BatchNorm1d` (Ioffe & Szegedy 2015)
//! and `torch.nn.LayerNorm` (Ba et al. 2016), both affine, ε = 1e-5.
//!
//! ```text
//! forward    x̂ = (x − μ) / √(σ² + ε)          y = γ ⊙ x̂ + β
//!            batch norm: μ, σ² per feature over the batch (training; σ² biased) or the running
//!                        estimates (eval); layer norm: μ, σ² per example over the features
//! backward   ∂L/∂γ += Σ ∂L/∂y ⊙ x̂             ∂L/∂β += Σ ∂L/∂y         g = γ ⊙ ∂L/∂y
//!            ∂L/∂x = (1/√(σ² + ε)) · (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))   (means over the normalised
//!                    axis; eval-mode batch norm: ∂L/∂x = g / √(running σ² + ε))
//! ```
//!
//! Batch norm in training mode also updates the running estimates as PyTorch does, with
//! momentum m = 0.1: `running_mean ← (1 − m)·running_mean + m·μ`,
//! `running_var ← (1 − m)·running_var + m·σ²·n/(n − 1)` (the unbiased variance),
//! `num_batches_tracked += 1`.

use crate::nn::Scalar;
use crate::nn::tensor::{Module, Prefix, Shape, TensorKind, TensorMut, TensorRef, data, data_mut};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip, s};
use serde::{Deserialize, Serialize};

/// PyTorch's ε of BatchNorm1d and LayerNorm.
pub const NORM_EPS: f64 = 1e-5;
/// PyTorch's BatchNorm1d momentum.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// Which normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// `torch.nn.BatchNorm1d(width)`: per feature, over the batch.
    Batch,
    /// `torch.nn.LayerNorm(width)`: per example, over the features.
    Layer,
}

/// What the `norm` key chooses: no normalisation, or a [`NormKind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum NormChoice {
    /// No normalisation
    #[default]
    None,
    /// BatchNorm1d: per feature, over the batch
    Batch,
    /// LayerNorm: per example, over the features
    Layer,
}

impl NormChoice {
    /// The norm layer chosen, if any.
    pub fn kind(self) -> Option<NormKind> {
        match self {
            Self::None => None,
            Self::Batch => Some(NormKind::Batch),
            Self::Layer => Some(NormKind::Layer),
        }
    }
}

impl From<Option<NormKind>> for NormChoice {
    fn from(kind: Option<NormKind>) -> Self {
        match kind {
            None => Self::None,
            Some(NormKind::Batch) => Self::Batch,
            Some(NormKind::Layer) => Self::Layer,
        }
    }
}

/// Where a hidden layer's normalisation sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum NormPosition {
    /// Between the linear layer and φ: `h = φ(norm(z))` (Ioffe & Szegedy's placement).
    #[default]
    Pre,
    /// After φ: `h = norm(φ(z))`.
    Post,
}

/// A batch-norm or layer-norm layer over `features` units, with its parameters, running
/// estimates (batch norm) and the caches its backward pass reads.
#[derive(Clone, Debug)]
pub struct Norm<F> {
    /// Batch or layer.
    pub kind: NormKind,
    /// γ, `[features]` (PyTorch's `weight`), initially 1.
    pub weight: Array1<F>,
    /// β, `[features]` (PyTorch's `bias`), initially 0.
    pub bias: Array1<F>,
    /// ∂L/∂γ, accumulated by [`Norm::backward`].
    pub grad_weight: Array1<F>,
    /// ∂L/∂β, accumulated by [`Norm::backward`].
    pub grad_bias: Array1<F>,
    /// Batch norm's running mean, `[features]` (empty for layer norm), initially 0.
    pub running_mean: Array1<F>,
    /// Batch norm's running (unbiased) variance, `[features]` (empty for layer norm), initially 1.
    pub running_var: Array1<F>,
    /// Batch norm's count of training batches seen (one entry; empty for layer norm). Kept as
    /// a float so that the state list holds one type; exact up to 2²⁴ batches in f32.
    pub num_batches_tracked: Array1<F>,
    /// Training mode (batch statistics) or eval mode (running statistics); layer norm is the
    /// same in both.
    pub training: bool,
    /// Whether training-mode batch norm updates its running estimates (off for probes taken
    /// outside the training steps, which must not change the network).
    pub track_running_stats: bool,
    /// x̂ of the last forward pass, `[rows, features]`.
    xhat: Array2<F>,
    /// 1/√(σ² + ε) of the last forward pass: per feature (batch) or per row (layer).
    inv_std: Array1<F>,
    /// f64 scratch per feature for the reductions.
    acc1: Vec<f64>,
    acc2: Vec<f64>,
    rows: usize,
}

impl<F: Scalar> Norm<F> {
    /// A fresh layer: γ = 1, β = 0, running mean 0 and variance 1, in training mode.
    pub fn new(kind: NormKind, features: usize) -> Self {
        let batch = kind == NormKind::Batch;
        let len = if batch { features } else { 0 };
        Self {
            kind,
            weight: Array1::ones(features),
            bias: Array1::zeros(features),
            grad_weight: Array1::zeros(features),
            grad_bias: Array1::zeros(features),
            running_mean: Array1::zeros(len),
            running_var: Array1::ones(len),
            num_batches_tracked: Array1::zeros(usize::from(batch)),
            training: true,
            track_running_stats: true,
            xhat: Array2::zeros((0, features)),
            inv_std: Array1::zeros(0),
            acc1: vec![0.0; features],
            acc2: vec![0.0; features],
            rows: 0,
        }
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.weight.len()
    }

    /// Makes the caches hold `rows` examples (allocates only when they grow).
    pub fn reserve(&mut self, rows: usize) {
        let d = self.features();
        if self.xhat.nrows() < rows {
            self.xhat = Array2::zeros((rows, d));
        }
        let need = if self.kind == NormKind::Batch { d } else { rows };
        if self.inv_std.len() < need {
            self.inv_std = Array1::zeros(need);
        }
    }

    /// Sets ∂L/∂γ and ∂L/∂β to zero.
    pub fn zero_grad(&mut self) {
        self.grad_weight.fill(F::zero());
        self.grad_bias.fill(F::zero());
    }

    /// y = γ ⊙ x̂ + β for a batch `x` (`[rows, features]`); caches x̂ and 1/√(σ² + ε).
    ///
    /// **Panics** for training-mode batch norm on one row (PyTorch refuses it too: the unbiased
    /// variance of one value is undefined); callers check the batch size first.
    pub fn forward(&mut self, x: ArrayView2<F>, mut y: ArrayViewMut2<F>) {
        let (n, d) = x.dim();
        self.reserve(n);
        self.rows = n;
        let eps = NORM_EPS;
        let mut xhat = self.xhat.slice_mut(s![..n, ..]);
        match (self.kind, self.training) {
            (NormKind::Batch, true) => {
                assert!(n > 1, "gradscope internal error: batch norm in training mode needs more than one row");
                self.acc1.iter_mut().for_each(|a| *a = 0.0);
                self.acc2.iter_mut().for_each(|a| *a = 0.0);
                for row in x.rows() {
                    self.acc1.iter_mut().zip(row).for_each(|(a, &v)| *a += v.f64());
                }
                let nf = n as f64;
                self.acc1.iter_mut().for_each(|a| *a /= nf);
                for row in x.rows() {
                    self.acc2.iter_mut().zip(row).zip(&self.acc1).for_each(|((a, &v), &m)| {
                        let dv = v.f64() - m;
                        *a += dv * dv;
                    });
                }
                let m = BATCH_NORM_MOMENTUM;
                for j in 0..d {
                    let (mean, var) = (self.acc1[j], self.acc2[j] / nf);
                    self.inv_std[j] = F::of(1.0 / (var + eps).sqrt());
                    if self.track_running_stats {
                        let unbiased = self.acc2[j] / (nf - 1.0);
                        self.running_mean[j] = F::of(m * mean + (1.0 - m) * self.running_mean[j].f64());
                        self.running_var[j] = F::of(m * unbiased + (1.0 - m) * self.running_var[j].f64());
                    }
                }
                if self.track_running_stats {
                    self.num_batches_tracked[0] += F::one();
                }
                let inv = self.inv_std.slice(s![..d]);
                for (mut xr, r) in xhat.rows_mut().into_iter().zip(x.rows()) {
                    Zip::from(&mut xr).and(&r).and(&inv).and(&self.acc1).for_each(|xh, &v, &is, &mean| {
                        *xh = F::of((v.f64() - mean) * is.f64());
                    });
                }
            }
            (NormKind::Batch, false) => {
                for j in 0..d {
                    self.inv_std[j] = F::of(1.0 / (self.running_var[j].f64() + eps).sqrt());
                }
                let inv = self.inv_std.slice(s![..d]);
                for (mut xr, r) in xhat.rows_mut().into_iter().zip(x.rows()) {
                    Zip::from(&mut xr).and(&r).and(&inv).and(&self.running_mean).for_each(|xh, &v, &is, &mean| {
                        *xh = (v - mean) * is;
                    });
                }
            }
            (NormKind::Layer, _) => {
                let df = d as f64;
                for (i, (mut xr, r)) in xhat.rows_mut().into_iter().zip(x.rows()).enumerate() {
                    let mean = r.iter().map(|v| v.f64()).sum::<f64>() / df;
                    let var = r.iter().map(|v| (v.f64() - mean) * (v.f64() - mean)).sum::<f64>() / df;
                    let is = 1.0 / (var + eps).sqrt();
                    self.inv_std[i] = F::of(is);
                    Zip::from(&mut xr).and(&r).for_each(|xh, &v| *xh = F::of((v.f64() - mean) * is));
                }
            }
        }
        for (mut yr, xr) in y.rows_mut().into_iter().zip(xhat.rows()) {
            Zip::from(&mut yr).and(&xr).and(&self.weight).and(&self.bias).for_each(|y, &xh, &g, &b| *y = g * xh + b);
        }
    }

    /// Takes `scale`·∂L/∂y (`grad_y` times a scalar, so that a residual branch's α needs no
    /// copy); adds to ∂L/∂γ, ∂L/∂β and writes ∂L/∂x into `grad_x`. Reads the caches of the
    /// last [`Norm::forward`].
    pub fn backward(&mut self, grad_y: ArrayView2<F>, scale: F, mut grad_x: ArrayViewMut2<F>) {
        let (n, d) = grad_y.dim();
        debug_assert_eq!(n, self.rows, "backward needs the forward pass's batch");
        let xhat = self.xhat.slice(s![..n, ..]);
        // parameter gradients
        for (gr, xr) in grad_y.rows().into_iter().zip(xhat.rows()) {
            Zip::from(&mut self.grad_weight).and(&mut self.grad_bias).and(&gr).and(&xr).for_each(|gw, gb, &g, &xh| {
                let g = scale * g;
                *gw += g * xh;
                *gb += g;
            });
        }
        match (self.kind, self.training) {
            (NormKind::Batch, true) => {
                // per feature: Σ g and Σ g·x̂ over the batch, g = scale·γ·∂L/∂y
                self.acc1.iter_mut().for_each(|a| *a = 0.0);
                self.acc2.iter_mut().for_each(|a| *a = 0.0);
                for (gr, xr) in grad_y.rows().into_iter().zip(xhat.rows()) {
                    for j in 0..d {
                        let g = (scale * self.weight[j] * gr[j]).f64();
                        self.acc1[j] += g;
                        self.acc2[j] += g * xr[j].f64();
                    }
                }
                let nf = n as f64;
                for (mut gx, (gr, xr)) in grad_x.rows_mut().into_iter().zip(grad_y.rows().into_iter().zip(xhat.rows()))
                {
                    for j in 0..d {
                        let g = (scale * self.weight[j] * gr[j]).f64();
                        let v = self.inv_std[j].f64() * (g - self.acc1[j] / nf - xr[j].f64() * self.acc2[j] / nf);
                        gx[j] = F::of(v);
                    }
                }
            }
            (NormKind::Batch, false) => {
                for (mut gx, gr) in grad_x.rows_mut().into_iter().zip(grad_y.rows()) {
                    for j in 0..d {
                        gx[j] = scale * self.weight[j] * gr[j] * self.inv_std[j];
                    }
                }
            }
            (NormKind::Layer, _) => {
                let df = d as f64;
                for (i, (mut gx, (gr, xr))) in
                    grad_x.rows_mut().into_iter().zip(grad_y.rows().into_iter().zip(xhat.rows())).enumerate()
                {
                    let (mut s1, mut s2) = (0.0f64, 0.0f64);
                    for j in 0..d {
                        let g = (scale * self.weight[j] * gr[j]).f64();
                        s1 += g;
                        s2 += g * xr[j].f64();
                    }
                    let is = self.inv_std[i].f64();
                    for j in 0..d {
                        let g = (scale * self.weight[j] * gr[j]).f64();
                        gx[j] = F::of(is * (g - s1 / df - xr[j].f64() * s2 / df));
                    }
                }
            }
        }
    }

    /// x̂ of the last forward pass.
    pub fn normalized(&self) -> ArrayView2<'_, F> {
        self.xhat.slice(s![..self.rows, ..])
    }
}

/// `weight` (γ), `bias` (β), then for batch norm `running_mean`, `running_var` and
/// `num_batches_tracked` (0-dimensional), as PyTorch's `BatchNorm1d`/`LayerNorm` state_dicts.
impl<F: Scalar> Module<F> for Norm<F> {
    fn visit<'a>(&'a self, p: Prefix, f: &mut dyn FnMut(TensorRef<'a, F>)) {
        let d = Shape::of(&[self.features()]);
        let param = |leaf, kind, value, grad| TensorRef { name: p.name(leaf), kind, shape: d, value, grad: Some(grad) };
        f(param("weight", TensorKind::Weight, data(&self.weight), data(&self.grad_weight)));
        f(param("bias", TensorKind::Bias, data(&self.bias), data(&self.grad_bias)));
        if self.kind == NormKind::Batch {
            let buffer = |leaf, kind, shape, value| TensorRef { name: p.name(leaf), kind, shape, value, grad: None };
            f(buffer("running_mean", TensorKind::Buffer, d, data(&self.running_mean)));
            f(buffer("running_var", TensorKind::Buffer, d, data(&self.running_var)));
            f(buffer("num_batches_tracked", TensorKind::Count, Shape::SCALAR, data(&self.num_batches_tracked)));
        }
    }

    fn visit_mut<'a>(&'a mut self, p: Prefix, f: &mut dyn FnMut(TensorMut<'a, F>)) {
        let d = Shape::of(&[self.features()]);
        let batch = self.kind == NormKind::Batch;
        let Self { weight, bias, grad_weight, grad_bias, running_mean, running_var, num_batches_tracked, .. } = self;
        let (w, b) = (TensorKind::Weight, TensorKind::Bias);
        f(TensorMut {
            name: p.name("weight"),
            kind: w,
            shape: d,
            value: data_mut(weight),
            grad: Some(data_mut(grad_weight)),
        });
        f(TensorMut {
            name: p.name("bias"),
            kind: b,
            shape: d,
            value: data_mut(bias),
            grad: Some(data_mut(grad_bias)),
        });
        if batch {
            let buffer = |leaf, kind, shape, value| TensorMut { name: p.name(leaf), kind, shape, value, grad: None };
            f(buffer("running_mean", TensorKind::Buffer, d, data_mut(running_mean)));
            f(buffer("running_var", TensorKind::Buffer, d, data_mut(running_var)));
            f(buffer("num_batches_tracked", TensorKind::Count, Shape::SCALAR, data_mut(num_batches_tracked)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Training-mode batch norm: zero mean, unit (biased) variance per feature; running
    /// estimates move by PyTorch's rule.
    #[test]
    fn batch_norm_normalises_and_tracks_like_pytorch() {
        let x = Array2::from_shape_fn((4, 3), |(i, j)| (i * i) as f64 + j as f64 * 0.5);
        let mut bn = Norm::<f64>::new(NormKind::Batch, 3);
        let mut y = Array2::zeros((4, 3));
        bn.forward(x.view(), y.view_mut());
        for col in y.columns() {
            let mean = col.sum() / 4.0;
            let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-4, "{mean} {var}");
        }
        // column 0 is 0, 1, 4, 9: mean 3.5, unbiased var (12.25 + 6.25 + 0.25 + 30.25)/3 = 49/3
        assert!((bn.running_mean[0] - 0.35).abs() < 1e-12);
        assert!((bn.running_var[0] - (0.9 + 0.1 * 49.0 / 3.0)).abs() < 1e-12);
        assert_eq!(bn.num_batches_tracked[0], 1.0);
        // eval mode uses the running estimates
        bn.training = false;
        bn.forward(x.view(), y.view_mut());
        let want = (0.0 - 0.35) / (bn.running_var[0] + 1e-5).sqrt();
        assert!((y[(0, 0)] - want).abs() < 1e-12);
        assert_eq!(bn.num_batches_tracked[0], 1.0);
    }

    #[test]
    fn layer_norm_normalises_each_row() {
        let x = Array2::from_shape_fn((3, 5), |(i, j)| (i + 1) as f64 * (j as f64).sin());
        let mut ln = Norm::<f64>::new(NormKind::Layer, 5);
        let mut y = Array2::zeros((3, 5));
        ln.forward(x.view(), y.view_mut());
        for row in y.rows() {
            let mean = row.sum() / 5.0;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 5.0;
            assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-3, "{mean} {var}");
        }
        assert!(ln.running_mean.is_empty() && ln.num_batches_tracked.is_empty());
    }
}
