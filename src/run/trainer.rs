//! [`Trainer`]: one run's state (network, optimizer, batch order, probe protocol, divergence
//! guard, clipping) and the step that advances it.
//!
//! This is the only place that calls probes. A probed step measures the gradients of its own
//! batch at the weights before its update; probing reads and never writes, so a run with probes
//! gives bit-identical weights to a run without them.

use super::batch::{Batch, evaluate_model};
use super::model::{Model, build_model};
use crate::config::{OnNonFinite, RunSpec};
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::io::checkpoint::{Checkpoint, CheckpointMeta, FORMAT};
use crate::nn::recurrent::TimeRecord;
use crate::nn::{Hook, Mlp, MlpConfig, Scalar, Threads};
use crate::nonfinite::{self, NonFinite};
use crate::optim::{OptimizerState, ParamNorms};
use crate::probe::{GradientProbe, StepRecord, TEST_ROWS_PROBED};
use crate::summary::{RunStatus, Summary};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Most test-subset evaluations at probed steps in one run (besides the final one).
const TEST_EVALUATIONS: u64 = 50;

/// Streams of the seed: the initialisation and the batch order draw from separate generators.
const ORDER_STREAM: u64 = 0x0bad_5eed;

/// Builds the network a spec describes for a data set, drawing weights from the seed.
pub fn build_mlp<F: Scalar>(spec: &RunSpec, data: &Dataset) -> Mlp<F> {
    let mut cfg = MlpConfig::uniform(data.inputs(), spec.width, spec.depth, data.outputs(), spec.activation, spec.init);
    cfg.sigma_w2 = spec.sigma_w2;
    cfg.sigma_b2 = spec.sigma_b2;
    cfg.arch = spec.arch;
    cfg.init(&mut ChaCha8Rng::seed_from_u64(spec.seed))
}

/// Number of updates a spec asks for on a training set of `rows` rows.
pub fn total_steps(spec: &RunSpec, rows: usize) -> u64 {
    let per_epoch = rows.div_ceil(spec.batch_size) as u64;
    spec.steps.unwrap_or(spec.epochs * per_epoch)
}

/// What one [`Trainer::step`] did.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    /// The step's index (from 0).
    pub step: u64,
    /// The batch loss before the update.
    pub loss: f64,
    /// The probe record, when the step was probed (and finite).
    pub record: Option<StepRecord>,
    /// A NaN or infinity appeared and `on_nonfinite = "stop"`: the run ends here, without update.
    pub diverged: bool,
}

/// A network in training and everything needed to continue it bit for bit.
///
/// `Trainer::new` builds the network from the spec's seed; [`Trainer::restore`] continues from
/// a checkpoint; [`Trainer::step`] takes one step; [`Trainer::final_probe`] makes the final probe
/// and [`Trainer::into_outcome`] the [`Outcome`] with its [`Summary`]. Each call runs in the trainer's own thread pool (`spec.threads` threads),
/// so results depend on the seed and the thread count only.
pub struct Trainer<'d, F: Scalar> {
    spec: RunSpec,
    data: &'d Dataset,
    pool: Arc<rayon::ThreadPool>,
    threads: Threads,
    model: Model<F>,
    steps: usize,
    opt: OptimizerState<F>,
    probe: GradientProbe,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    batch: Batch<F>,
    bs: usize,
    per_epoch: u64,
    total: u64,
    probe_test: Split,
    test_period: u64,
    next: u64,
    epoch: u64,
    probes_done: u64,
    skipped: u64,
    clipped_steps: u64,
    elapsed_before: f64,
    start: Instant,
    first: Option<StepRecord>,
    last: Option<StepRecord>,
    nonfinite: Option<NonFinite>,
    ended: Option<RunStatus>,
}

impl<'d, F: Scalar> Trainer<'d, F> {
    /// A fresh network for `spec` on `data`; refuses an empty training split and batch norm
    /// with a batch of one row.
    pub fn new(spec: &RunSpec, data: &'d Dataset) -> Result<Self> {
        let start = Instant::now();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(spec.threads)
            .build()
            .map_err(|e| Error::invalid("threads", spec.threads, format!("cannot start the thread pool: {e}")))?;
        let train = &data.train;
        if train.is_empty() {
            return Err(Error::Data { path: data.name.clone().into(), msg: "the training split is empty".into() });
        }
        let mut model: Model<F> = build_model(spec, data)?;
        let steps = spec.recurrent.as_ref().map_or(0, |r| r.steps);
        let bs = spec.batch_size.min(train.len());
        if model.needs_batch_stats() && (bs < 2 || train.len() % bs == 1) {
            let msg = format!(
                "batch norm needs at least 2 rows in every batch, but {} training rows in batches of {bs} leave one of 1; choose another batch_size",
                train.len()
            );
            return Err(Error::invalid("batch_size", spec.batch_size, msg));
        }
        model.reserve(bs, steps);
        let total = total_steps(spec, train.len());
        // The test subset is evaluated at most TEST_EVALUATIONS times a run (plus at the end), so
        // that probing every step stays cheap: one evaluation costs several training steps.
        let probes_total = total.checked_div(spec.probe_every).map_or(1, |p| p + 1);
        Ok(Self {
            opt: OptimizerState::new(spec.optimizer, &model),
            spec: spec.clone(),
            data,
            pool: Arc::new(pool),
            threads: Threads::new(spec.threads),
            model,
            steps,
            probe: GradientProbe::new(),
            rng: ChaCha8Rng::seed_from_u64(spec.seed ^ ORDER_STREAM),
            order: (0..train.len()).collect(),
            batch: Batch::new(bs, train, steps),
            bs,
            per_epoch: train.len().div_ceil(bs) as u64,
            total,
            probe_test: data.test.select(&(0..data.test.len().min(TEST_ROWS_PROBED)).collect::<Vec<_>>()),
            test_period: probes_total.div_ceil(TEST_EVALUATIONS).max(1),
            next: 0,
            epoch: 0,
            probes_done: 0,
            skipped: 0,
            clipped_steps: 0,
            elapsed_before: 0.0,
            start,
            first: None,
            last: None,
            nonfinite: None,
            ended: None,
        })
    }

    /// Continues from a checkpoint (read from `path`, named in errors): network, optimizer,
    /// batch order, generator position and probe history; the steps after it give bit-identical
    /// numbers to an uninterrupted run with the same threads.
    pub fn restore(&mut self, path: &Path, ck: &Checkpoint) -> Result<()> {
        ck.restore(path, &mut self.model, &mut self.opt, &mut self.order)?;
        self.rng.set_word_pos(ck.order_word_pos(path)?);
        let m = &ck.meta;
        if m.step > self.total || (m.step > 0 && m.epoch != (m.step - 1) / self.per_epoch) {
            return Err(Error::Checkpoint {
                path: path.into(),
                msg: format!("step {} (epoch {}) does not fit a run of {} steps", m.step, m.epoch, self.total),
            });
        }
        (self.next, self.epoch, self.probes_done, self.skipped, self.elapsed_before) =
            (m.step, m.epoch, m.probes_done, m.skipped_steps, m.elapsed_s);
        self.clipped_steps = m.clipped_steps;
        (self.first, self.last, self.nonfinite) = (m.first.clone(), m.last.clone(), m.nonfinite.clone());
        if self.next > 0 {
            // the batch of the last step taken, which the final probe measures again
            let pos = ((self.next - 1) % self.per_epoch) as usize;
            self.batch
                .gather(&self.data.train, &self.order[pos * self.bs..((pos + 1) * self.bs).min(self.order.len())]);
        }
        Ok(())
    }

    /// The steps the spec asks for.
    pub fn total_steps(&self) -> u64 {
        self.total
    }

    /// The next step's index: how many steps were taken (or skipped).
    pub fn next_step(&self) -> u64 {
        self.next
    }

    /// Whether every step was taken, or the run diverged or was interrupted.
    pub fn is_done(&self) -> bool {
        self.ended.is_some() || self.next >= self.total
    }

    /// The network.
    pub fn model(&self) -> &Model<F> {
        &self.model
    }

    /// Whether a checkpoint is due after the step just taken (`checkpoint_every`).
    pub fn checkpoint_due(&self) -> bool {
        self.spec.checkpoint_every > 0 && self.next > 0 && self.next.is_multiple_of(self.spec.checkpoint_every)
    }

    /// Takes the next step: gathers its batch, runs the forward and backward passes (probed at
    /// step 0 and every `probe_every` steps), checks for NaN/∞, clips, and updates.
    pub fn step(&mut self) -> Result<StepOutcome> {
        let pool = Arc::clone(&self.pool);
        pool.install(|| self.step_in_pool())
    }

    fn step_in_pool(&mut self) -> Result<StepOutcome> {
        let (step, spec, train) = (self.next, &self.spec, &self.data.train);
        let pos = (step % self.per_epoch) as usize;
        if pos == 0 {
            self.epoch = step / self.per_epoch;
            self.order.shuffle(&mut self.rng);
        }
        self.batch.gather(train, &self.order[pos * self.bs..((pos + 1) * self.bs).min(self.order.len())]);
        let probed = step == 0 || (spec.probe_every > 0 && step.is_multiple_of(spec.probe_every));
        let detail = probed && self.probes_done.is_multiple_of(self.test_period);
        self.probe.detail = detail;
        let attached: Option<&mut dyn Hook<F>> = if probed { Some(&mut self.probe) } else { None };
        // the guard reads every parameter gradient as it is made (see crate::nonfinite)
        let mut guard = nonfinite::Guard::new(attached);
        let targets = self.batch.targets(train);
        let loss = self.model.loss_and_grads(&self.batch, targets, spec.loss, self.threads, &mut guard, probed);
        let mut out = StepOutcome { step, loss, record: None, diverged: false };
        self.next = step + 1;
        if !loss.is_finite() || !guard.finite {
            let at = self.model.locate(step, loss).unwrap_or(NonFinite {
                step,
                part: nonfinite::Part::Gradient,
                layer: None,
                tensor: None,
            });
            self.nonfinite.get_or_insert(at);
            if spec.on_nonfinite == OnNonFinite::Stop {
                self.ended = Some(RunStatus::Diverged);
                self.next = step; // the step was not taken
                out.diverged = true;
                return Ok(out);
            }
            self.skipped += 1;
            return Ok(out);
        }
        // gradient clipping, the one place: between the backward pass and the update
        let pre_clip = (probed && !spec.clip.is_none()).then(|| ParamNorms::of(&self.model).grad);
        let clipped = spec.clip.apply(&mut self.model);
        self.clipped_steps += u64::from(clipped.is_some_and(|c| c.clipped));
        if !probed {
            self.opt.step(&mut self.model, spec.lr);
            return Ok(out);
        }
        self.model.after_backward(&mut self.probe, step, self.epoch, loss);
        let test = if detail { self.test_at_probe() } else { (None, None) };
        self.probes_done += 1;
        self.opt.step_measured(&mut self.model, self.spec.lr);
        self.probe.after_update(&self.opt.norms);
        let mut rec = self.probe.take().expect("gradscope internal error: recorded after backward");
        (rec.test_loss, rec.test_accuracy) = test;
        if let Some(g) = pre_clip {
            crate::probe::set_grad_w_norms(&mut rec, &g); // the gradient before clipping
        }
        (rec.grad_norm, rec.clipped) = (clipped.map(|c| c.total_norm), clipped.map(|c| c.clipped));
        self.keep(&rec);
        out.record = Some(rec);
        Ok(out)
    }

    fn keep(&mut self, rec: &StepRecord) {
        if self.first.is_none() {
            self.first = Some(rec.clone());
        }
        self.last = Some(rec.clone());
    }

    /// The test rows evaluated at probed steps (between the probe and the update, so they read
    /// the weights the probe saw; a forward pass changes no weight).
    fn test_at_probe(&mut self) -> (Option<f64>, Option<f64>) {
        if self.probe_test.is_empty() {
            return (None, None);
        }
        let chunk = self.chunk();
        let (loss, acc) =
            evaluate_model(&mut self.model, &self.probe_test, self.spec.loss, chunk, self.threads, self.steps);
        (Some(loss), acc)
    }

    fn chunk(&self) -> usize {
        self.spec.batch_size.max(256)
    }

    /// Loss and (for class labels) accuracy of the network over a whole split, in eval mode.
    pub fn evaluate(&mut self, split: &Split) -> (f64, Option<f64>) {
        let (pool, chunk, steps) = (Arc::clone(&self.pool), self.chunk(), self.steps);
        pool.install(|| evaluate_model(&mut self.model, split, self.spec.loss, chunk, self.threads, steps))
    }

    /// The state after the steps taken, to continue from later. `metrics_len` (the bytes of
    /// `metrics.jsonl` that belong to these steps) and `config` (the resolved config's TOML) are
    /// what the run folder records beside it.
    pub fn checkpoint(&self, metrics_len: u64, config: String) -> Checkpoint {
        let meta = CheckpointMeta {
            format: FORMAT,
            gradscope_version: env!("CARGO_PKG_VERSION").into(),
            dtype: F::NAME.into(),
            step: self.next,
            epoch: self.epoch,
            order_word_pos: self.rng.get_word_pos().to_string(),
            probes_done: self.probes_done,
            skipped_steps: self.skipped,
            clipped_steps: self.clipped_steps,
            nonfinite: self.nonfinite.clone(),
            first: self.first.clone(),
            last: self.last.clone(),
            elapsed_s: self.elapsed_s(),
            metrics_len,
            config,
        };
        Checkpoint::capture(&self.model, &self.opt, &self.order, meta)
    }

    /// Ends the run after the step just taken as `interrupted` (a checkpoint continues it).
    pub fn interrupt(&mut self) {
        self.ended.get_or_insert(RunStatus::Interrupted);
    }

    fn elapsed_s(&self) -> f64 {
        self.elapsed_before + self.start.elapsed().as_secs_f64()
    }

    /// The final probe: the gradient at the final weights on the last batch, no update after
    /// it. None after an interruption (the resumed run makes it), unless nothing was probed yet.
    pub fn final_probe(&mut self) -> Option<StepRecord> {
        if self.ended.is_some() && self.first.is_some() {
            return None;
        }
        let pool = Arc::clone(&self.pool);
        let rec = pool.install(|| {
            self.probe.detail = true;
            self.model.set_track_running_stats(false); // a probe, not a training step: the estimates stay
            let targets = self.batch.targets(&self.data.train);
            let mut hook = nonfinite::Guard::new(Some(&mut self.probe as &mut dyn Hook<F>));
            let loss = self.model.loss_and_grads(&self.batch, targets, self.spec.loss, self.threads, &mut hook, true);
            self.model.after_backward(&mut self.probe, self.next, self.epoch, loss);
            self.probe.after_update(&ParamNorms::of(&self.model));
            self.model.set_track_running_stats(true);
            let mut rec = self.probe.take().expect("gradscope internal error: recorded after backward");
            (rec.test_loss, rec.test_accuracy) = self.test_at_probe();
            rec
        });
        self.keep(&rec);
        Some(rec)
    }

    /// The summary: the losses over the whole training and test sets and how the run ended.
    pub fn summary(&mut self) -> Summary {
        let data = self.data;
        let (train_loss, train_accuracy) = self.evaluate(&data.train);
        let (test_loss, test_accuracy) = self.evaluate(&data.test);
        let ratio = |r: &Option<StepRecord>| r.as_ref().map_or(f64::NAN, |r| r.vanishing_ratio);
        let time_ratio = |r: &Option<StepRecord>| {
            r.as_ref().and_then(|r| r.time.as_ref()).map(|t: &TimeRecord| t.vanishing_ratio_time)
        };
        let status = self.ended.unwrap_or(RunStatus::Completed);
        let diverged_at = (status == RunStatus::Diverged).then_some(self.next);
        let steps = self.next;
        Summary {
            gradscope_version: env!("CARGO_PKG_VERSION").into(),
            data: data.name.clone(),
            seed: self.spec.seed,
            threads: self.spec.threads,
            steps,
            epochs: if steps == 0 { 0 } else { (steps - 1) / self.per_epoch + 1 },
            train_loss,
            test_loss: (!data.test.is_empty()).then_some(test_loss),
            train_accuracy,
            test_accuracy,
            vanishing_ratio: ratio(&self.first),
            vanishing_ratio_final: ratio(&self.last),
            vanishing_ratio_time: time_ratio(&self.first),
            vanishing_ratio_time_final: time_ratio(&self.last),
            diverged: diverged_at.is_some(),
            diverged_at_step: diverged_at,
            clipped_steps: self.clipped_steps,
            wall_time_s: self.elapsed_s(),
            status,
            nonfinite: self.nonfinite.clone(),
            skipped_steps: self.skipped,
        }
    }

    /// The network, the summary and the first and last probe records (after
    /// [`Trainer::final_probe`], which makes sure there is one).
    pub fn into_outcome(mut self) -> Outcome<F> {
        let summary = self.summary();
        let first = self.first.take().expect("gradscope internal error: a run has probe records");
        let last = self.last.take().expect("gradscope internal error: a run has probe records");
        Outcome { model: self.model, summary, first, last }
    }
}

/// A trained network and its summary.
pub struct Outcome<F> {
    /// The network after the last update.
    pub model: Model<F>,
    /// Final figures.
    pub summary: Summary,
    /// The first probe record (step 0).
    pub first: StepRecord,
    /// The last probe record (the end).
    pub last: StepRecord,
}
