//! Sequence tasks, seeded, time-major (`x`: `[T, n, features]`, as the recurrent layers read).
//!
//! - [`adding`] — the adding problem (Hochreiter & Schmidhuber 1997; as in Le, Jaitly & Hinton
//!   2015 and Arjovsky, Shah & Bengio 2016): two channels, values U(0, 1) and a marker 1 at one
//!   position drawn uniformly in the first half [0, ⌊T/2⌋) and one in the second half
//!   [⌊T/2⌋, T); the target is the sum of the two marked values. Predicting the mean (1)
//!   gives MSE Var(u₁ + u₂) = 1/6 ([`ADDING_BASELINE_MSE`]).
//! - [`copy_task`] — the copy/memory task (Arjovsky, Shah & Bengio 2016): T + 20 steps over an
//!   alphabet of 10 one-hot symbols (0 blank, 1–8 data, 9 delimiter): 10 data symbols drawn
//!   uniformly from 1–8, T − 1 blanks, the delimiter, 10 blanks. The target (9 classes, 0–8,
//!   one per step, [`crate::nn::recurrent::Head::EveryStep`]) is T + 10 blanks and then the 10
//!   data symbols. A memoryless model's best cross-entropy is 10·ln 8/(T + 20) ([`copy_baseline`]).
//! - [`mnist_rows`] — row-by-row MNIST: each image read as 28 steps of 28 pixels (row t at step
//!   t), pixels in [0, 1], from the same IDX files as `--data mnist`; 10 classes.

use crate::data::{Dataset, Labels, Split, mnist};
use crate::error::{Error, Result};
use ndarray::{Array2, Array3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The adding problem's mean-predictor MSE, Var(U₁ + U₂) = 2/12.
pub const ADDING_BASELINE_MSE: f64 = 1.0 / 6.0;

/// The copy task's memoryless cross-entropy for T blanks: 10·ln 8 / (T + 20).
pub fn copy_baseline(seq_len: usize) -> f64 {
    10.0 * 8f64.ln() / (seq_len + 20) as f64
}

/// Sequences and their targets.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqSplit {
    /// Inputs, `[T, n, features]`.
    pub x: Array3<f32>,
    /// One target row per sequence, or (`every_step`) per step and sequence in time-major
    /// order (row t·n + i).
    pub y: Labels,
}

impl SeqSplit {
    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.x.dim().1
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequences at `idx`, in that order.
    pub fn select(&self, idx: &[usize], every_step: bool) -> SeqSplit {
        let x = self.x.select(Axis(1), idx);
        let y = if every_step {
            let (t, n) = (self.x.dim().0, self.len());
            let rows: Vec<usize> = (0..t).flat_map(|s| idx.iter().map(move |&i| s * n + i)).collect();
            self.y.select(&rows)
        } else {
            self.y.select(idx)
        };
        SeqSplit { x, y }
    }
}

impl SeqSplit {
    /// One row per sequence, its steps one after the other (`[n, T·features]`: row i holds
    /// step t's features at `t·features..`), as a [`Split`]; per-step targets become
    /// [`Labels::Steps`]. The recurrent run layer reads rows back into time-major batches.
    pub fn into_rows(self) -> Split {
        let (t, n, f) = self.x.dim();
        let x = self.x.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
        let x = x.into_shape_with_order((n, t * f)).expect("standard layout");
        let y = match self.y {
            Labels::Classes { labels, n_classes } if labels.len() == t * n && t > 1 => Labels::Steps {
                labels: (0..n).flat_map(|i| (0..t).map(move |s| (i, s))).map(|(i, s)| labels[s * n + i]).collect(),
                steps: t,
                n_classes,
            },
            y => y,
        };
        Split { x, y }
    }
}

/// A sequence task: training and test splits.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqDataset {
    /// `adding:T`, `copy:T`, `mnist_rows:DIR`.
    pub name: String,
    /// Targets at every step (the copy task) or at the last one.
    pub every_step: bool,
    /// Training sequences.
    pub train: SeqSplit,
    /// Held-out sequences.
    pub test: SeqSplit,
}

fn check_len(seq_len: usize, min: usize, task: &str) -> Result<()> {
    if seq_len < min {
        return Err(Error::invalid("seq_len", seq_len, format!("the {task} needs --seq-len of at least {min}")));
    }
    Ok(())
}

fn adding_split(rng: &mut ChaCha8Rng, t: usize, n: usize) -> SeqSplit {
    let mut x = Array3::<f32>::zeros((t, n, 2));
    let mut y = Array2::<f32>::zeros((n, 1));
    let half = t / 2;
    for i in 0..n {
        for s in 0..t {
            x[(s, i, 0)] = rng.random::<f32>();
        }
        let (a, b) = (rng.random_range(0..half), rng.random_range(half..t));
        x[(a, i, 1)] = 1.0;
        x[(b, i, 1)] = 1.0;
        y[(i, 0)] = x[(a, i, 0)] + x[(b, i, 0)];
    }
    SeqSplit { x, y: Labels::Values(y) }
}

impl SeqDataset {
    /// Both splits as rows ([`SeqSplit::into_rows`]).
    pub fn into_rows(self) -> Dataset {
        Dataset { name: self.name, train: self.train.into_rows(), test: self.test.into_rows(), classes: None }
    }
}

/// The adding problem with `seq_len` ≥ 2 steps.
pub fn adding(seq_len: usize, n_train: usize, n_test: usize, seed: u64) -> Result<SeqDataset> {
    check_len(seq_len, 2, "adding problem")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let train = adding_split(&mut rng, seq_len, n_train);
    let test = adding_split(&mut rng, seq_len, n_test);
    Ok(SeqDataset { name: format!("adding:{seq_len}"), every_step: false, train, test })
}

/// Symbols of the copy task's input alphabet.
pub const COPY_SYMBOLS: usize = 10;
/// Output classes of the copy task (blank and the 8 data symbols).
pub const COPY_CLASSES: usize = 9;

fn copy_split(rng: &mut ChaCha8Rng, blanks: usize, n: usize) -> SeqSplit {
    let t = blanks + 20;
    let mut x = Array3::<f32>::zeros((t, n, COPY_SYMBOLS));
    let mut labels = vec![0usize; t * n];
    for i in 0..n {
        let data: [usize; 10] = std::array::from_fn(|_| rng.random_range(1..=8));
        for s in 0..t {
            let symbol = match s {
                s if s < 10 => data[s],
                s if s == blanks + 9 => 9,
                _ => 0,
            };
            x[(s, i, symbol)] = 1.0;
        }
        for (k, &d) in data.iter().enumerate() {
            labels[(blanks + 10 + k) * n + i] = d;
        }
    }
    SeqSplit { x, y: Labels::Classes { labels, n_classes: COPY_CLASSES } }
}

/// The copy task with `seq_len` = T ≥ 1 blanks between the data and the delimiter (T + 20 steps).
pub fn copy_task(seq_len: usize, n_train: usize, n_test: usize, seed: u64) -> Result<SeqDataset> {
    check_len(seq_len, 1, "copy task")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let train = copy_split(&mut rng, seq_len, n_train);
    let test = copy_split(&mut rng, seq_len, n_test);
    Ok(SeqDataset { name: format!("copy:{seq_len}"), every_step: true, train, test })
}

/// Row-by-row MNIST from the IDX files in `dir` (28 steps of 28 pixels).
pub fn mnist_rows(dir: &Path) -> Result<SeqDataset> {
    let d = mnist::load(dir)?;
    let rows = |s: &crate::data::Split| -> Result<SeqSplit> {
        let (n, f) = s.x.dim();
        if f != 28 * 28 {
            return Err(Error::Data {
                path: dir.into(),
                msg: format!("images have {f} pixels; row-by-row MNIST needs 28×28"),
            });
        }
        let x = s.x.view().into_shape_with_order((n, 28, 28)).expect("784 = 28·28").permuted_axes([1, 0, 2]);
        Ok(SeqSplit { x: x.as_standard_layout().into_owned(), y: s.y.clone() })
    };
    Ok(SeqDataset {
        name: format!("mnist_rows:{}", dir.display()),
        every_step: false,
        train: rows(&d.train)?,
        test: rows(&d.test)?,
    })
}
