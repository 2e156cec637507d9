//! Data sets: built-in synthetic ones, MNIST's IDX files and CSV, behind one small interface.
//!
//! Every source yields a [`Dataset`]: a training split and a held-out test split of f32 inputs
//! with either real-valued targets or class labels.

pub mod csv;
pub mod download;
pub mod idx;
pub mod mnist;
pub mod sequence;
pub mod standardize;
pub mod synthetic;

use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2, Axis};
use std::path::PathBuf;

/// Targets of a split.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    /// Real-valued targets, `[rows, outputs]`.
    Values(Array2<f32>),
    /// Class indices in `0..n_classes`.
    Classes {
        /// One label per row.
        labels: Vec<usize>,
        /// Number of classes (the network's outputs).
        n_classes: usize,
    },
    /// A class index per time step of each row's sequence (the copy task's targets; the head
    /// reads every step).
    Steps {
        /// Row i's label of step t at `i·steps + t`.
        labels: Vec<usize>,
        /// Time steps per row.
        steps: usize,
        /// Number of classes.
        n_classes: usize,
    },
}

impl Labels {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Labels::Values(v) => v.nrows(),
            Labels::Classes { labels, .. } => labels.len(),
            Labels::Steps { labels, steps, .. } => labels.len() / steps,
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The network outputs these targets need.
    pub fn outputs(&self) -> usize {
        match self {
            Labels::Values(v) => v.ncols(),
            Labels::Classes { n_classes, .. } | Labels::Steps { n_classes, .. } => *n_classes,
        }
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Labels {
        match self {
            Labels::Values(v) => Labels::Values(v.select(Axis(0), idx)),
            Labels::Classes { labels, n_classes } => {
                Labels::Classes { labels: idx.iter().map(|&i| labels[i]).collect(), n_classes: *n_classes }
            }
            Labels::Steps { labels, steps, n_classes } => Labels::Steps {
                labels: idx.iter().flat_map(|&i| labels[i * steps..(i + 1) * steps].iter().copied()).collect(),
                steps: *steps,
                n_classes: *n_classes,
            },
        }
    }
}

/// Inputs and targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Inputs, `[rows, features]`.
    pub x: Array2<f32>,
    /// Targets, one per row.
    pub y: Labels,
}

impl Split {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Split {
        Split { x: self.x.select(Axis(0), idx), y: self.y.select(idx) }
    }

    /// The first `n` rows (all when `n >= len`).
    pub fn head(&self, n: usize) -> Split {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.select(&idx)
    }

    /// The inputs.
    pub fn x(&self) -> ArrayView2<'_, f32> {
        self.x.view()
    }
}

/// A training split and a held-out test split.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// A short description ("regression", "mnist:/data/mnist", …).
    pub name: String,
    /// Training rows.
    pub train: Split,
    /// Held-out rows (may be empty).
    pub test: Split,
    /// The names of the classes, label i being `classes[i]`, when the file gave names
    /// (a CSV's string labels); None for numbered classes and real-valued targets.
    pub classes: Option<Vec<String>>,
}

impl Dataset {
    /// Number of input features.
    pub fn inputs(&self) -> usize {
        self.train.x.ncols()
    }

    /// Number of network outputs the targets need.
    pub fn outputs(&self) -> usize {
        self.train.y.outputs()
    }

    /// True for class labels (accuracy is reported).
    pub fn is_classification(&self) -> bool {
        matches!(self.train.y, Labels::Classes { .. } | Labels::Steps { .. })
    }

    /// Rejects NaN or infinite inputs or targets, naming the split, row and column.
    pub fn check_finite(&self) -> Result<()> {
        for (split, s) in [("train", &self.train), ("test", &self.test)] {
            let bad = |a: &Array2<f32>, what: &str| -> Result<()> {
                if let Some((i, v)) = a.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    let (r, c) = (i / a.ncols().max(1), i % a.ncols().max(1));
                    return Err(Error::Data {
                        path: self.name.clone().into(),
                        msg: format!("{split} {what} row {r}, column {c} is {v}; remove or impute non-finite values"),
                    });
                }
                Ok(())
            };
            bad(&s.x, "input")?;
            if let Labels::Values(v) = &s.y {
                bad(v, "target")?;
            }
        }
        Ok(())
    }
}

/// Where data comes from, as written after `--data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// `regression`: the built-in smooth regression set.
    Regression,
    /// `spirals`: the built-in three-class spirals.
    Spirals,
    /// `mnist:DIR` (or `fashion-mnist:DIR`): the four IDX files (gzipped or not) in DIR.
    Mnist(PathBuf),
    /// `mnist` or `fashion-mnist`: the four IDX files in the cache folder, where
    /// `gradscope data NAME` puts them ([`download::cache_dir`]).
    Cached(&'static str),
    /// `csv:FILE`: a CSV file with a header row.
    Csv(PathBuf),
    /// `adding` with `seq_len` T: the adding problem (recurrent networks; see
    /// [`sequence::adding`]).
    Adding(usize),
    /// `copy` with `seq_len` T: the copy task, T + 20 steps (recurrent networks; see
    /// [`sequence::copy_task`]).
    Copy(usize),
}

/// Training sequences of the built-in sequence tasks (`adding`, `copy`).
pub const SEQ_TRAIN_ROWS: usize = 10_000;
/// Test sequences of the built-in sequence tasks.
pub const SEQ_TEST_ROWS: usize = 1_000;

impl DataSpec {
    /// Parses `regression`, `spirals`, `mnist`, `fashion-mnist`, `mnist:DIR`,
    /// `fashion-mnist:DIR`, `csv:FILE`, `adding` or `copy` (the last
    /// two need `seq_len`: [`DataSpec::parse_with`]).
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_with(s, None)
    }

    /// [`DataSpec::parse`], with the `seq_len` key the sequence tasks take.
    pub fn parse_with(s: &str, seq_len: Option<usize>) -> Result<Self> {
        let hint = "use regression, spirals, mnist, fashion-mnist, mnist:DIR, csv:FILE, adding or copy";
        let needs = |task: &str| Error::invalid("seq_len", "(none)", format!("{task} needs --seq-len T"));
        match s.split_once(':') {
            None => match s {
                "regression" => Ok(DataSpec::Regression),
                "spirals" => Ok(DataSpec::Spirals),
                "mnist" => Ok(DataSpec::Cached(download::MNIST.name)),
                "fashion-mnist" => Ok(DataSpec::Cached(download::FASHION_MNIST.name)),
                "adding" => seq_len.map(DataSpec::Adding).ok_or_else(|| needs("the adding problem")),
                "copy" => seq_len.map(DataSpec::Copy).ok_or_else(|| needs("the copy task")),
                "csv" => Err(Error::invalid("data", s, format!("{s} needs a path after a colon; {hint}"))),
                _ => Err(Error::unknown_name(
                    "data set",
                    s,
                    &["regression", "spirals", "mnist", "fashion-mnist", "mnist:DIR", "csv:FILE", "adding", "copy"],
                )),
            },
            Some(("mnist" | "fashion-mnist", dir)) if !dir.is_empty() => Ok(DataSpec::Mnist(dir.into())),
            Some(("csv", file)) if !file.is_empty() => Ok(DataSpec::Csv(file.into())),
            _ => Err(Error::invalid("data", s, hint)),
        }
    }

    /// True for the sequence tasks (`adding`, `copy`), which only a recurrent network reads.
    pub fn is_sequence_task(&self) -> bool {
        matches!(self, DataSpec::Adding(_) | DataSpec::Copy(_))
    }

    /// The time steps a recurrent network reads each row in: T for `adding`, T + 20 for
    /// `copy`, 28 rows of 28 pixels for `mnist:DIR`; `None` for data without a time axis.
    pub fn steps(&self) -> Option<usize> {
        match self {
            DataSpec::Adding(t) => Some(*t),
            DataSpec::Copy(t) => Some(t + 20),
            DataSpec::Mnist(_) => Some(28),
            _ => None,
        }
    }
}

/// How to load a [`DataSpec`].
#[derive(Clone, Debug)]
pub struct LoadOptions<'a> {
    /// The CSV column holding the target.
    pub target: Option<&'a str>,
    /// Read CSV targets as class labels (for `cross_entropy`).
    pub classes: bool,
    /// Seed for synthetic data and for the CSV train/test split.
    pub seed: u64,
    /// Fraction of CSV rows held out for testing.
    pub test_fraction: f64,
    /// CSV: use only these feature columns.
    pub features: Option<&'a [String]>,
    /// CSV: leave these columns out.
    pub drop: Option<&'a [String]>,
    /// CSV: the class names of an earlier run, so that labels are numbered as it numbered them.
    pub class_names: Option<&'a [String]>,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self {
            target: None,
            classes: false,
            seed: 0,
            test_fraction: 0.2,
            features: None,
            drop: None,
            class_names: None,
        }
    }
}

/// Loads a data set and checks it for non-finite values.
pub fn load(spec: &DataSpec, opts: &LoadOptions) -> Result<Dataset> {
    if !matches!(spec, DataSpec::Csv(_)) {
        for (key, given) in [("features", opts.features), ("drop", opts.drop)] {
            if let Some(cols) = given {
                return Err(Error::invalid(key, cols.join(","), "chooses CSV columns; it needs --data csv:FILE"));
            }
        }
    }
    let ds = match spec {
        DataSpec::Regression => synthetic::regression(opts.seed),
        DataSpec::Spirals => synthetic::spirals(opts.seed),
        DataSpec::Mnist(dir) => mnist::load(dir)?,
        DataSpec::Cached(name) => load_cached(name)?,
        DataSpec::Csv(file) => {
            let target = opts.target.ok_or_else(|| {
                Error::invalid("target", "(none)", "csv data needs --target COLUMN naming the column to predict")
            })?;
            csv::load_with(file, target, opts)?
        }
        DataSpec::Adding(t) => sequence::adding(*t, SEQ_TRAIN_ROWS, SEQ_TEST_ROWS, opts.seed)?.into_rows(),
        DataSpec::Copy(t) => sequence::copy_task(*t, SEQ_TRAIN_ROWS, SEQ_TEST_ROWS, opts.seed)?.into_rows(),
    };
    ds.check_finite()?;
    Ok(ds)
}

/// Loads `mnist` or `fashion-mnist` from the cache folder, or says how to fill it.
fn load_cached(name: &str) -> Result<Dataset> {
    let source = download::Source::by_name(name)?;
    let dir = download::cache_dir(name)?;
    if let Some(f) = source.files.iter().find(|f| !dir.join(f.name).is_file()) {
        return Err(Error::Data {
            path: dir.clone(),
            msg: format!(
                "no {} here (the cache folder of --data {name}); download the data with `gradscope data {name}`, \
                 set {}=DIR to use another cache, or give the folder with --data {name}:DIR",
                f.name,
                download::DATA_ENV
            ),
        });
    }
    mnist::load(&dir)
}
