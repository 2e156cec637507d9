//! The training loop: mini-batch SGD-family training with probes at chosen steps.
//!
//! This is the only place that calls probes. A probed step measures the gradients of its own
//! batch at the weights before its update; probing reads and never writes, so a run with probes
//! gives bit-identical weights to a run without them.

use crate::config::RunSpec;
use crate::data::{Dataset, Labels, Split};
use crate::error::{Error, Result, parse_name};
use crate::io::checkpoint::{Checkpoint, CheckpointMeta, FORMAT};
use crate::nn::{Hook, Mlp, MlpConfig, Scalar, Targets, Threads};
use crate::nonfinite::{self, NonFinite};
use crate::optim::{OptimizerState, ParamNorms};
use crate::probe::{GradientProbe, StepRecord, TEST_ROWS_PROBED};
use ndarray::{Array2, ArrayView2, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Most test-subset evaluations at probed steps in one run (besides the final one).
const TEST_EVALUATIONS: u64 = 50;

/// Streams of the seed: the initialisation and the batch order draw from separate generators.
const ORDER_STREAM: u64 = 0x0bad_5eed;

/// What a step does when its loss, an activation or a gradient is NaN or infinite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// Stop there: the run ends `diverged`, with the weights before that step's update.
    #[default]
    Stop,
    /// Skip that update and go on (counted in `skipped_steps`).
    Skip,
}

/// The names of [`OnNonFinite`].
pub const ON_NONFINITE_NAMES: [&str; 2] = ["stop", "skip"];

impl OnNonFinite {
    /// Parses `stop` or `skip`.
    pub fn from_name(name: &str) -> Result<Self> {
        parse_name("on_nonfinite", name, &[("stop", Self::Stop), ("skip", Self::Skip)])
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every step taken (summary files written before this field existed read as this).
    #[default]
    Completed,
    /// Stopped at a non-finite value (`on_nonfinite = "stop"`).
    Diverged,
    /// Stopped by [`Observer::should_stop`] (Ctrl-C); a checkpoint continues it.
    Interrupted,
}

/// Receives what training produces, as it happens.
pub trait Observer: Send {
    /// Training is about to take `total_steps` steps.
    fn on_start(&mut self, _total_steps: u64) {}
    /// A step finished with this batch loss.
    fn on_step(&mut self, _step: u64, _loss: f64) {}
    /// A probed step's statistics are complete.
    fn on_record(&mut self, _record: &StepRecord) -> Result<()> {
        Ok(())
    }
    /// Asked once after every step: `true` ends training there, `interrupted`, after a
    /// checkpoint (Ctrl-C sets what this reads).
    fn should_stop(&mut self) -> bool {
        false
    }
    /// A checkpoint of the state after the step just taken: every `checkpoint_every` steps and
    /// when training is interrupted. The observer may fill in `metrics_len` and `config`.
    fn on_checkpoint(&mut self, _checkpoint: &mut Checkpoint) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// What `summary.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// gradscope's version.
    pub gradscope_version: String,
    /// The data set.
    pub data: String,
    /// The seed.
    pub seed: u64,
    /// Threads used.
    pub threads: usize,
    /// Updates applied.
    pub steps: u64,
    /// Epochs begun (a partial last epoch counts).
    pub epochs: u64,
    /// Loss over the whole training set at the end.
    #[serde(deserialize_with = "crate::probe::nan_if_null")]
    pub train_loss: f64,
    /// Loss over the test set at the end (null without a test split).
    pub test_loss: Option<f64>,
    /// Training accuracy at the end (classification only).
    pub train_accuracy: Option<f64>,
    /// Test accuracy at the end (classification only).
    pub test_accuracy: Option<f64>,
    /// vanishing_ratio at step 0: grad_w_norm of the first layer over the last layer's.
    #[serde(deserialize_with = "crate::probe::nan_if_null")]
    pub vanishing_ratio: f64,
    /// vanishing_ratio at the final probe.
    #[serde(deserialize_with = "crate::probe::nan_if_null")]
    pub vanishing_ratio_final: f64,
    /// True when a NaN or infinity stopped training (`on_nonfinite = "stop"`).
    pub diverged: bool,
    /// The step at which it stopped.
    pub diverged_at_step: Option<u64>,
    /// Wall-clock seconds of training and evaluation (summed over resumed parts).
    pub wall_time_s: f64,
    /// Steps whose gradients were clipped (0 without clipping).
    #[serde(default)]
    pub clipped_steps: u64,
    /// `completed`, `diverged` or `interrupted`.
    #[serde(default)]
    pub status: RunStatus,
    /// Where the first NaN or infinity appeared (null when none did).
    #[serde(default)]
    pub nonfinite: Option<NonFinite>,
    /// Updates skipped for a NaN or infinity (`on_nonfinite = "skip"`).
    #[serde(default)]
    pub skipped_steps: u64,
}

/// A trained network and its summary.
pub struct Outcome<F> {
    /// The network after the last update.
    pub mlp: Mlp<F>,
    /// Final figures.
    pub summary: Summary,
    /// The first and the last probe records (step 0 and the end).
    pub first: StepRecord,
    /// The last probe record.
    pub last: StepRecord,
}

/// Builds the network a spec describes for a data set, drawing weights from the seed.
pub fn build_mlp<F: Scalar>(spec: &RunSpec, data: &Dataset) -> Mlp<F> {
    let mut cfg = MlpConfig::uniform(data.inputs(), spec.width, spec.depth, data.outputs(), spec.activation, spec.init);
    cfg.sigma_w2 = spec.sigma_w2;
    cfg.sigma_b2 = spec.sigma_b2;
    cfg.arch = spec.arch;
    cfg.init(&mut ChaCha8Rng::seed_from_u64(spec.seed))
}

/// Reusable buffers for one mini-batch in float type F.
struct Batch<F> {
    x: Array2<F>,
    values: Array2<F>,
    classes: Vec<usize>,
    rows: usize,
}

impl<F: Scalar> Batch<F> {
    fn new(cap: usize, split: &Split) -> Self {
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
    fn gather(&mut self, split: &Split, idx: &[usize]) {
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

    fn x(&self) -> ArrayView2<'_, F> {
        self.x.slice(s![..self.rows, ..])
    }

    fn targets(&self, split: &Split) -> Targets<'_, F> {
        match split.y {
            Labels::Values(_) => Targets::Values(self.values.slice(s![..self.rows, ..])),
            Labels::Classes { .. } => Targets::Classes(&self.classes[..self.rows]),
        }
    }
}

/// Loss and (for class labels) accuracy of a network over a whole split, in chunks of `chunk` rows.
pub fn evaluate<F: Scalar>(
    mlp: &mut Mlp<F>,
    split: &Split,
    loss: crate::nn::Loss,
    chunk: usize,
    threads: Threads,
) -> (f64, Option<f64>) {
    if split.is_empty() {
        return (f64::NAN, None);
    }
    let chunk = chunk.max(1);
    let training = mlp.is_training();
    mlp.set_training(false); // batch norm: the running estimates, as model.eval()
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
    let value = if loss == crate::nn::Loss::Sse { sum } else { sum / divisor };
    let acc = matches!(split.y, Labels::Classes { .. }).then(|| correct as f64 / split.len() as f64);
    (value, acc)
}

/// Number of updates a spec asks for on a training set of `rows` rows.
pub fn total_steps(spec: &RunSpec, rows: usize) -> u64 {
    let per_epoch = rows.div_ceil(spec.batch_size) as u64;
    spec.steps.unwrap_or(spec.epochs * per_epoch)
}

/// Trains a fresh network on `data` as `spec` says, in float type F.
///
/// A run that diverges or is interrupted is not an error: it returns its [`Outcome`] with
/// [`Summary::status`] saying so (a sweep records it as a result).
pub fn train<F: Scalar>(spec: &RunSpec, data: &Dataset, observer: &mut (dyn Observer + Send)) -> Result<Outcome<F>> {
    train_from(spec, data, observer, None)
}

/// [`train`], continuing from a checkpoint (read from `path`) when one is given: the network,
/// optimizer, batch order, generator position and probe history are restored, and the steps
/// after the checkpoint give bit-identical numbers to an uninterrupted run with the same
/// threads.
pub fn train_from<F: Scalar>(
    spec: &RunSpec,
    data: &Dataset,
    observer: &mut (dyn Observer + Send),
    resume: Option<(&Path, &Checkpoint)>,
) -> Result<Outcome<F>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(spec.threads)
        .build()
        .map_err(|e| Error::invalid("threads", spec.threads, format!("cannot start the thread pool: {e}")))?;
    pool.install(|| train_in_pool(spec, data, observer, resume))
}

fn train_in_pool<F: Scalar>(
    spec: &RunSpec,
    data: &Dataset,
    observer: &mut (dyn Observer + Send),
    resume: Option<(&Path, &Checkpoint)>,
) -> Result<Outcome<F>> {
    let start = Instant::now();
    let threads = Threads::new(spec.threads);
    let train = &data.train;
    if train.is_empty() {
        return Err(Error::Data { path: data.name.clone().into(), msg: "the training split is empty".into() });
    }
    let mut mlp: Mlp<F> = build_mlp(spec, data);
    let mut opt = OptimizerState::new(spec.optimizer, &mlp);
    let mut probe = GradientProbe::new();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ ORDER_STREAM);
    let bs = spec.batch_size.min(train.len());
    if mlp.needs_batch_stats() && (bs < 2 || train.len() % bs == 1) {
        let msg = format!(
            "batch norm needs at least 2 rows in every batch, but {} training rows in batches of {bs} leave one of 1; choose another batch_size",
            train.len()
        );
        return Err(Error::invalid("batch_size", spec.batch_size, msg));
    }
    let per_epoch = train.len().div_ceil(bs) as u64;
    let total = total_steps(spec, train.len());
    let mut batch = Batch::<F>::new(bs, train);
    mlp.reserve(bs);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut first, mut last) = (None, None);
    let (mut first_step, mut epoch, mut probes_done, mut skipped, mut elapsed_before) = (0, 0, 0u64, 0u64, 0.0);
    let mut nonfinite_at: Option<NonFinite> = None;
    let mut clipped_steps = 0u64;
    if let Some((path, ck)) = resume {
        ck.restore(path, &mut mlp, &mut opt, &mut order)?;
        rng.set_word_pos(ck.order_word_pos(path)?);
        let m = &ck.meta;
        if m.step > total || (m.step > 0 && m.epoch != (m.step - 1) / per_epoch) {
            return Err(Error::Checkpoint {
                path: path.into(),
                msg: format!("step {} (epoch {}) does not fit a run of {total} steps", m.step, m.epoch),
            });
        }
        (first_step, epoch, probes_done, skipped, elapsed_before) =
            (m.step, m.epoch, m.probes_done, m.skipped_steps, m.elapsed_s);
        clipped_steps = m.clipped_steps;
        (first, last, nonfinite_at) = (m.first.clone(), m.last.clone(), m.nonfinite.clone());
        if first_step > 0 {
            // the batch of the last step taken, which the final probe measures again
            let pos = ((first_step - 1) % per_epoch) as usize;
            batch.gather(train, &order[pos * bs..((pos + 1) * bs).min(order.len())]);
        }
    }
    // The test rows evaluated at probed steps (between the probe and the update, so they read
    // the weights the probe saw; a forward pass changes no weight).
    let probe_test = data.test.select(&(0..data.test.len().min(TEST_ROWS_PROBED)).collect::<Vec<_>>());
    let chunk = spec.batch_size.max(256);
    let test_at_probe = |mlp: &mut Mlp<F>| {
        if probe_test.is_empty() {
            return (None, None);
        }
        let (loss, acc) = evaluate(mlp, &probe_test, spec.loss, chunk, threads);
        (Some(loss), acc)
    };
    // The test subset is evaluated at most TEST_EVALUATIONS times a run (plus at the end), so
    // that probing every step stays cheap: one evaluation costs several training steps.
    let probes_total = total.checked_div(spec.probe_every).map_or(1, |p| p + 1);
    let test_period = probes_total.div_ceil(TEST_EVALUATIONS).max(1);
    observer.on_start(total);
    let mut diverged_at = None;
    let mut interrupted_at = None;
    for step in first_step..total {
        let pos = (step % per_epoch) as usize;
        if pos == 0 {
            epoch = step / per_epoch;
            order.shuffle(&mut rng);
        }
        let idx = &order[pos * bs..((pos + 1) * bs).min(order.len())];
        batch.gather(train, idx);
        let probed = step == 0 || (spec.probe_every > 0 && step.is_multiple_of(spec.probe_every));
        probe.detail = probed && probes_done.is_multiple_of(test_period);
        let attached: Option<&mut dyn Hook<F>> = if probed { Some(&mut probe) } else { None };
        // the guard reads every parameter gradient as it is made (see crate::nonfinite)
        let mut guard = nonfinite::Guard::new(attached);
        let loss = mlp.loss_and_grads_probed(batch.x(), batch.targets(train), spec.loss, threads, Some(&mut guard));
        if !loss.is_finite() || !guard.finite {
            let at = nonfinite::locate(&mlp, step, loss).unwrap_or(NonFinite {
                step,
                part: nonfinite::Part::Gradient,
                layer: None,
                tensor: None,
            });
            nonfinite_at.get_or_insert(at);
            if spec.on_nonfinite == OnNonFinite::Stop {
                diverged_at = Some(step);
                break;
            }
            skipped += 1;
        } else {
            // gradient clipping, the one place: between the backward pass and the update
            let pre_clip = (probed && !spec.clip.is_none()).then(|| ParamNorms::of(&mlp).grad);
            let clipped = spec.clip.apply(&mut mlp);
            clipped_steps += u64::from(clipped.is_some_and(|c| c.clipped));
            let mut test = (None, None);
            if probed {
                probe.after_backward(step, epoch, loss, &mlp);
                if probes_done.is_multiple_of(test_period) {
                    test = test_at_probe(&mut mlp);
                }
                probes_done += 1;
            }
            if probed {
                opt.step_measured(&mut mlp, spec.lr);
                probe.after_update(&mlp, &opt.norms);
                let mut rec = probe.take().expect("recorded after backward");
                (rec.test_loss, rec.test_accuracy) = test;
                if let Some(g) = pre_clip {
                    crate::probe::set_grad_w_norms(&mut rec, &g); // the gradient before clipping
                }
                (rec.grad_norm, rec.clipped) = (clipped.map(|c| c.total_norm), clipped.map(|c| c.clipped));
                observer.on_record(&rec)?;
                if first.is_none() {
                    first = Some(rec.clone());
                }
                last = Some(rec);
            } else {
                opt.step(&mut mlp, spec.lr);
            }
        }
        observer.on_step(step, loss);
        let stop = observer.should_stop();
        if stop || (spec.checkpoint_every > 0 && (step + 1).is_multiple_of(spec.checkpoint_every)) {
            let meta = CheckpointMeta {
                format: FORMAT,
                gradscope_version: env!("CARGO_PKG_VERSION").into(),
                dtype: F::NAME.into(),
                step: step + 1,
                epoch,
                order_word_pos: rng.get_word_pos().to_string(),
                probes_done,
                skipped_steps: skipped,
                clipped_steps,
                nonfinite: nonfinite_at.clone(),
                first: first.clone(),
                last: last.clone(),
                elapsed_s: elapsed_before + start.elapsed().as_secs_f64(),
                metrics_len: 0,
                config: String::new(),
            };
            observer.on_checkpoint(&mut Checkpoint::capture(&mlp, &opt, &order, meta))?;
        }
        if stop {
            interrupted_at = Some(step + 1);
            break;
        }
    }
    let steps_done = diverged_at.or(interrupted_at).unwrap_or(total);
    // The final probe: the gradient at the final weights on the last batch, no update after it
    // (not after an interruption: the resumed run makes it).
    if (diverged_at.is_none() && interrupted_at.is_none()) || first.is_none() {
        probe.detail = true;
        mlp.set_track_running_stats(false); // a probe, not a training step: the estimates stay
        let loss = mlp.loss_and_grads_probed(batch.x(), batch.targets(train), spec.loss, threads, Some(&mut probe));
        probe.after_backward(steps_done, epoch, loss, &mlp);
        probe.after_update(&mlp, &ParamNorms::of(&mlp));
        mlp.set_track_running_stats(true);
        let mut rec = probe.take().expect("recorded after backward");
        (rec.test_loss, rec.test_accuracy) = test_at_probe(&mut mlp);
        observer.on_record(&rec)?;
        if first.is_none() {
            first = Some(rec.clone());
        }
        last = Some(rec);
    }
    let (first, last) = (first.expect("probed"), last.expect("probed"));
    let (train_loss, train_accuracy) = evaluate(&mut mlp, train, spec.loss, chunk, threads);
    let (test_loss, test_accuracy) = evaluate(&mut mlp, &data.test, spec.loss, chunk, threads);
    let summary = Summary {
        gradscope_version: env!("CARGO_PKG_VERSION").into(),
        data: data.name.clone(),
        seed: spec.seed,
        threads: spec.threads,
        steps: steps_done,
        epochs: if steps_done == 0 { 0 } else { (steps_done - 1) / per_epoch + 1 },
        train_loss,
        test_loss: (!data.test.is_empty()).then_some(test_loss),
        train_accuracy,
        test_accuracy,
        vanishing_ratio: first.vanishing_ratio,
        vanishing_ratio_final: last.vanishing_ratio,
        diverged: diverged_at.is_some(),
        diverged_at_step: diverged_at,
        clipped_steps,
        wall_time_s: elapsed_before + start.elapsed().as_secs_f64(),
        status: if diverged_at.is_some() {
            RunStatus::Diverged
        } else if interrupted_at.is_some() {
            RunStatus::Interrupted
        } else {
            RunStatus::Completed
        },
        nonfinite: nonfinite_at,
        skipped_steps: skipped,
    };
    Ok(Outcome { mlp, summary, first, last })
}
