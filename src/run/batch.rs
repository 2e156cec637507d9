//! Mini-batches gathered into reusable buffers, and evaluation over a whole split.

use crate::data::{Labels, Split};
use crate::nn::{Loss, Mlp, Scalar, Targets, Threads};
use ndarray::{Array2, ArrayView2, s};

/// Reusable buffers for one mini-batch in float type F.
pub(crate) struct Batch<F> {
    x: Array2<F>,
    values: Array2<F>,
    classes: Vec<usize>,
    rows: usize,
}

impl<F: Scalar> Batch<F> {
    pub(crate) fn new(cap: usize, split: &Split) -> Self {
        let k = match &split.y {
            Labels::Values(v) => v.ncols(),
            Labels::Classes { .. } => 0,
        };
        Self {
            x: Array2::zeros((cap, split.x.ncols())),
            values: Array2::zeros((cap, k)),
            classes: vec![0; cap],
            rows: 0,
        }
    }

    /// Copies the rows `idx` of `split` in (no allocation).
    pub(crate) fn gather(&mut self, split: &Split, idx: &[usize]) {
        self.rows = idx.len();
        for (r, &i) in idx.iter().enumerate() {
            self.x.row_mut(r).iter_mut().zip(split.x.row(i)).for_each(|(d, &s)| *d = F::of(s as f64));
            match &split.y {
                Labels::Values(v) => {
                    self.values.row_mut(r).iter_mut().zip(v.row(i)).for_each(|(d, &s)| *d = F::of(s as f64))
                }
                Labels::Classes { labels, .. } => self.classes[r] = labels[i],
            }
        }
    }

    pub(crate) fn x(&self) -> ArrayView2<'_, F> {
        self.x.slice(s![..self.rows, ..])
    }

    pub(crate) fn targets(&self, split: &Split) -> Targets<'_, F> {
        match split.y {
            Labels::Values(_) => Targets::Values(self.values.slice(s![..self.rows, ..])),
            Labels::Classes { .. } => Targets::Classes(&self.classes[..self.rows]),
        }
    }
}

/// Loss and (for class labels) accuracy of a network over a whole split, in chunks of `chunk`
/// rows, in eval mode (batch norm uses its running estimates, as `model.eval()`).
pub fn evaluate<F: Scalar>(
    mlp: &mut Mlp<F>,
    split: &Split,
    loss: Loss,
    chunk: usize,
    threads: Threads,
) -> (f64, Option<f64>) {
    if split.is_empty() {
        return (f64::NAN, None);
    }
    let chunk = chunk.max(1);
    let training = mlp.is_training();
    mlp.set_training(false);
    let mut batch = Batch::<F>::new(chunk.min(split.len()), split);
    let (mut sum, mut divisor, mut correct) = (0.0, 0.0, 0usize);
    let idx: Vec<usize> = (0..split.len()).collect();
    for part in idx.chunks(chunk) {
        batch.gather(split, part);
        let out = mlp.forward(batch.x(), threads);
        let (s, d) = loss.sum_and_divisor(out, batch.targets(split));
        sum += s;
        divisor += d;
        if let Labels::Classes { labels, .. } = &split.y {
            for (row, &i) in out.rows().into_iter().zip(part) {
                let arg = row
                    .iter()
                    .enumerate()
                    .fold((0, F::neg_infinity()), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
                    .0;
                correct += usize::from(arg == labels[i]);
            }
        }
    }
    mlp.set_training(training);
    let value = if loss == Loss::Sse { sum } else { sum / divisor };
    let acc = matches!(split.y, Labels::Classes { .. }).then(|| correct as f64 / split.len() as f64);
    (value, acc)
}
