//! Mini-batches gathered into reusable buffers, and evaluation over a whole split.

use super::model::Model;
use crate::data::{Labels, Split};
use crate::nn::{Loss, Mlp, Scalar, Targets, Threads};
use ndarray::{Array2, ArrayView2, ArrayView3, s};

/// Reusable buffers for one mini-batch in float type F.
///
/// For a recurrent model (`steps` T > 0) each row is a sequence (`[T·features]`, step after
/// step); [`Batch::gather`] also writes it time-major into `seq` (`[T, rows, features]`, what
/// the recurrent layers read), and per-step class labels time-major (row t·rows + r).
pub(crate) struct Batch<F> {
    x: Array2<F>,
    values: Array2<F>,
    classes: Vec<usize>,
    rows: usize,
    steps: usize,
    seq: Vec<F>,
}

impl<F: Scalar> Batch<F> {
    /// Buffers for up to `cap` rows of `split`, read in `steps` time steps (0: not sequences).
    pub(crate) fn new(cap: usize, split: &Split, steps: usize) -> Self {
        let (k, labels) = match &split.y {
            Labels::Values(v) => (v.ncols(), cap),
            Labels::Classes { .. } => (0, cap),
            Labels::Steps { steps, .. } => (0, cap * steps),
        };
        Self {
            x: Array2::zeros((cap, split.x.ncols())),
            values: Array2::zeros((cap, k)),
            classes: vec![0; labels],
            rows: 0,
            steps,
            seq: if steps > 0 { vec![F::zero(); cap * split.x.ncols()] } else { Vec::new() },
        }
    }

    /// Copies the rows `idx` of `split` in (no allocation).
    pub(crate) fn gather(&mut self, split: &Split, idx: &[usize]) {
        self.rows = idx.len();
        let n = idx.len();
        for (r, &i) in idx.iter().enumerate() {
            self.x.row_mut(r).iter_mut().zip(split.x.row(i)).for_each(|(d, &s)| *d = F::of(s as f64));
            match &split.y {
                Labels::Values(v) => {
                    self.values.row_mut(r).iter_mut().zip(v.row(i)).for_each(|(d, &s)| *d = F::of(s as f64))
                }
                Labels::Classes { labels, .. } => self.classes[r] = labels[i],
                Labels::Steps { labels, steps, .. } => {
                    for (t, &c) in labels[i * steps..(i + 1) * steps].iter().enumerate() {
                        self.classes[t * n + r] = c;
                    }
                }
            }
        }
        if self.steps > 0 {
            self.fill_time_major();
        }
    }

    /// `seq[t, r, :] = x[r, t·f..(t+1)·f]`.
    fn fill_time_major(&mut self) {
        let (n, t) = (self.rows, self.steps);
        let f = self.x.ncols() / t;
        for r in 0..n {
            let row = self.x.row(r);
            let row = row.as_slice().expect("gradscope internal error: batch rows are contiguous");
            for (s, step) in row.chunks_exact(f).enumerate() {
                self.seq[(s * n + r) * f..(s * n + r + 1) * f].copy_from_slice(step);
            }
        }
    }

    /// The sequences, time-major `[T, rows, features]` (recurrent models only).
    pub(crate) fn x3(&self) -> ArrayView3<'_, F> {
        let (n, t) = (self.rows, self.steps);
        let f = self.x.ncols() / t.max(1);
        ArrayView3::from_shape((t, n, f), &self.seq[..t * n * f]).expect("gradscope internal error: sized by new")
    }

    pub(crate) fn x(&self) -> ArrayView2<'_, F> {
        self.x.slice(s![..self.rows, ..])
    }

    pub(crate) fn targets(&self, split: &Split) -> Targets<'_, F> {
        match split.y {
            Labels::Values(_) => Targets::Values(self.values.slice(s![..self.rows, ..])),
            Labels::Classes { .. } => Targets::Classes(&self.classes[..self.rows]),
            Labels::Steps { steps, .. } => Targets::Classes(&self.classes[..self.rows * steps]),
        }
    }
}

/// Loss and (for class labels) accuracy of a model over a whole split, in eval mode: the MLP's
/// [`evaluate`]; a recurrent net's over its sequences (per-step labels: accuracy over every
/// step). `steps`: the time steps of a row.
pub(crate) fn evaluate_model<F: Scalar>(
    model: &mut Model<F>,
    split: &Split,
    loss: Loss,
    chunk: usize,
    threads: Threads,
    steps: usize,
) -> (f64, Option<f64>) {
    if let Model::Mlp(mlp) = model {
        return evaluate(mlp, split, loss, chunk, threads);
    }
    if split.is_empty() {
        return (f64::NAN, None);
    }
    let chunk = chunk.max(1);
    let mut batch = Batch::<F>::new(chunk.min(split.len()), split, steps);
    let (mut sum, mut divisor, mut correct, mut count) = (0.0, 0.0, 0usize, 0usize);
    let idx: Vec<usize> = (0..split.len()).collect();
    for part in idx.chunks(chunk) {
        batch.gather(split, part);
        let out = model.forward(&batch, threads);
        let targets = batch.targets(split);
        let (s, d) = loss.sum_and_divisor(out, targets);
        sum += s;
        divisor += d;
        if let Targets::Classes(labels) = targets {
            for (row, &label) in out.rows().into_iter().zip(labels) {
                correct += usize::from(argmax(row) == label);
                count += 1;
            }
        }
    }
    let value = if loss == Loss::Sse { sum } else { sum / divisor };
    let classes = matches!(split.y, Labels::Classes { .. } | Labels::Steps { .. });
    (value, classes.then(|| correct as f64 / count.max(1) as f64))
}

fn argmax<F: Scalar>(row: ndarray::ArrayView1<F>) -> usize {
    row.iter().enumerate().fold((0, F::neg_infinity()), |b, (j, &v)| if v > b.1 { (j, v) } else { b }).0
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
    let mut batch = Batch::<F>::new(chunk.min(split.len()), split, 0);
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
