//! Losses and their gradient with respect to the network's output ŷ.
//!
//! ```text
//! mse            L = (1/(n·k)) Σᵢⱼ (ŷᵢⱼ − yᵢⱼ)²         ∂L/∂ŷ = 2(ŷ − y)/(n·k)   torch.nn.MSELoss()
//! sse            L = Σᵢ ‖yᵢ − ŷᵢ‖²  (the lecture's)      ∂L/∂ŷ = 2(ŷ − y)
//! cross_entropy  L = (1/n) Σᵢ −log softmax(ŷᵢ)_{cᵢ}       ∂L/∂ŷ = (softmax(ŷ) − onehot(c))/n
//!                                                          torch.nn.CrossEntropyLoss()
//! ```
//! n is the batch size and k the number of outputs. With class labels, `mse` and `sse` compare
//! ŷ with the one-hot vector of the class; with real-valued targets, `cross_entropy` takes them
//! as class probabilities, as PyTorch does. Softmax is computed with the max subtracted.

use crate::nn::Scalar;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// A loss function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Loss {
    /// Mean squared error over all elements.
    Mse,
    /// Sum of squared errors over the batch (the lecture's Σ‖y − ŷ‖²).
    Sse,
    /// Softmax followed by negative log-likelihood, mean over the batch.
    CrossEntropy,
}

/// The targets of one batch.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, F> {
    /// Real-valued targets, `[batch, outputs]`.
    Values(ArrayView2<'a, F>),
    /// One class index per row.
    Classes(&'a [usize]),
}

impl<'a, F: Scalar> Targets<'a, F> {
    /// The targets of rows `r` of the batch.
    pub fn rows_in(&self, r: std::ops::Range<usize>) -> Targets<'a, F> {
        match *self {
            Targets::Values(v) => Targets::Values(v.slice_move(ndarray::s![r, ..])),
            Targets::Classes(c) => Targets::Classes(&c[r]),
        }
    }

    fn rows(&self) -> usize {
        match self {
            Targets::Values(v) => v.nrows(),
            Targets::Classes(c) => c.len(),
        }
    }

    /// y_ij, with class labels read as one-hot rows.
    #[inline]
    fn at(&self, i: usize, j: usize) -> F {
        match self {
            Targets::Values(v) => v[(i, j)],
            Targets::Classes(c) => {
                if c[i] == j {
                    F::one()
                } else {
                    F::zero()
                }
            }
        }
    }
}

impl Loss {
    /// The unnormalised sum behind the loss over these rows, and the divisor that turns the
    /// sum over a whole data set into the loss (`n·k` for mse, 1 for sse, `n` for cross_entropy).
    pub fn sum_and_divisor<F: Scalar>(&self, out: ArrayView2<F>, target: Targets<F>) -> (f64, f64) {
        let (n, k) = out.dim();
        debug_assert_eq!(target.rows(), n);
        match self {
            Loss::Mse | Loss::Sse => {
                let mut s = 0.0;
                for i in 0..n {
                    for j in 0..k {
                        let d = (out[(i, j)] - target.at(i, j)).f64();
                        s += d * d;
                    }
                }
                (s, if *self == Loss::Mse { (n * k) as f64 } else { 1.0 })
            }
            Loss::CrossEntropy => {
                let mut s = 0.0;
                for (i, row) in out.rows().into_iter().enumerate() {
                    let m = row.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
                    let lse = m.f64() + row.iter().map(|&o| (o - m).f64().exp()).sum::<f64>().ln();
                    s += match target {
                        Targets::Classes(c) => lse - row[c[i]].f64(),
                        Targets::Values(t) => (0..k).map(|j| t[(i, j)].f64() * (lse - row[j].f64())).sum(),
                    };
                }
                (s, n as f64)
            }
        }
    }

    /// L for one batch.
    pub fn value<F: Scalar>(&self, out: ArrayView2<F>, target: Targets<F>) -> f64 {
        let (s, d) = self.sum_and_divisor(out, target);
        if *self == Loss::Sse { s } else { s / d }
    }

    /// Returns L and writes ∂L/∂ŷ into `grad`.
    pub fn forward_backward<F: Scalar>(&self, out: ArrayView2<F>, target: Targets<F>, grad: ArrayViewMut2<F>) -> f64 {
        self.gradient(out, target, grad, out.nrows());
        self.value(out, target)
    }

    /// Writes ∂L/∂ŷ of some rows of a batch of `batch` rows into `grad` (`out` and `target` hold
    /// those rows): a row's gradient depends on that row and the batch size alone, so rows
    /// written apart have the bits of the whole batch's.
    pub fn gradient<F: Scalar>(
        &self,
        out: ArrayView2<F>,
        target: Targets<F>,
        mut grad: ArrayViewMut2<F>,
        batch: usize,
    ) {
        let (n, k) = out.dim();
        debug_assert_eq!(grad.dim(), (n, k));
        debug_assert_eq!(target.rows(), n);
        match self {
            Loss::Mse | Loss::Sse => {
                let scale = if *self == Loss::Mse { F::of(2.0 / (batch * k) as f64) } else { F::of(2.0) };
                for i in 0..n {
                    for j in 0..k {
                        grad[(i, j)] = scale * (out[(i, j)] - target.at(i, j));
                    }
                }
            }
            Loss::CrossEntropy => {
                let inv_n = F::of(1.0 / batch as f64);
                for (i, (row, mut g)) in out.rows().into_iter().zip(grad.rows_mut()).enumerate() {
                    let m = row.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
                    Zip::from(&mut g).and(&row).for_each(|g, &o| *g = (o - m).exp());
                    let z: F = g.iter().copied().sum();
                    let mass = match target {
                        Targets::Classes(_) => F::one(),
                        Targets::Values(t) => t.row(i).iter().copied().sum(),
                    };
                    for j in 0..k {
                        g[j] = (g[j] / z * mass - target.at(i, j)) * inv_n;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn reference_values() {
        let out = array![[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]];
        let y = array![[1.0, 0.0, 2.5], [0.1, 0.2, 0.3]];
        // hand sums: diffs² = .25 1 .25 .01 .01 .25 = 1.77
        assert!((Loss::Mse.value(out.view(), Targets::Values(y.view())) - 1.77 / 6.0).abs() < 1e-15);
        assert!((Loss::Sse.value(out.view(), Targets::Values(y.view())) - 1.77).abs() < 1e-15);
        // torch.nn.functional.cross_entropy(out, tensor([2, 0]), float64) = 0.7753230357...
        // computed by hand: row0 lse = ln(e^.5+e^-1+e^2) = 2.24131..., loss0 = 0.24131;
        // row1 lse = ln(1+e^.3+e^-.2) = 1.13993..., loss1 = 1.13993
        let ce = Loss::CrossEntropy.value(out.view(), Targets::<f64>::Classes(&[2, 0]));
        let l0 = (0.5f64.exp() + (-1.0f64).exp() + 2.0f64.exp()).ln() - 2.0;
        let l1 = (1.0 + 0.3f64.exp() + (-0.2f64).exp()).ln();
        assert!((ce - (l0 + l1) / 2.0).abs() < 1e-15);
    }

    /// ∂L/∂ŷ written in two parts of the batch (each with the batch's size) has the bits of the
    /// whole batch's, for every loss and both kinds of targets.
    #[test]
    fn gradient_of_rows_apart_has_the_bits_of_the_batch() {
        let out = Array2::from_shape_fn((7, 3), |(i, j)| ((i * 3 + j) as f32 * 0.7).sin() * 3.0);
        let y = Array2::from_shape_fn((7, 3), |(i, j)| ((i + j) as f32 * 0.3).cos().abs());
        let classes = [2, 0, 1, 1, 0, 2, 2];
        for loss in [Loss::Mse, Loss::Sse, Loss::CrossEntropy] {
            for target in [Targets::Values(y.view()), Targets::Classes(&classes)] {
                let mut whole = Array2::zeros((7, 3));
                loss.forward_backward(out.view(), target, whole.view_mut());
                let mut parts = Array2::zeros((7, 3));
                for r in [0..3, 3..7] {
                    let (o, g) = (out.slice(ndarray::s![r.clone(), ..]), parts.slice_mut(ndarray::s![r.clone(), ..]));
                    loss.gradient(o, target.rows_in(r), g, 7);
                }
                assert_eq!(whole, parts, "{loss:?}");
            }
        }
    }

    #[test]
    fn cross_entropy_is_stable_for_huge_logits() {
        let out = array![[1000.0f32, -1000.0, 0.0]];
        let mut g = Array2::zeros((1, 3));
        let l = Loss::CrossEntropy.forward_backward(out.view(), Targets::Classes(&[1]), g.view_mut());
        assert!((l - 2000.0).abs() < 1e-3 && g.iter().all(|v| v.is_finite()), "{l} {g}");
    }
}
