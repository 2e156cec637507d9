//! Training runs: [`Trainer`] (one step at a time), the loop [`train_from`], and run folders
//! ([`RunDir`]): train a config into a folder with [`train_into`], continue one with [`resume`].
//!
//! ```no_run
//! use gradscope::config::Config;
//! use gradscope::run::{self, Silent};
//! # fn main() -> gradscope::Result<()> {
//! let config = Config { data: "spirals".into(), depth: 6, steps: Some(200), ..Config::default() };
//! let (spec, outcome) = run::train_into(&config, "out/spirals".as_ref(), run::Mode::New, &mut Silent)?;
//! println!("{} steps, vanishing ratio {:.2e}", outcome.summary.steps, outcome.summary.vanishing_ratio);
//! # let _ = spec;
//! # Ok(())
//! # }
//! ```

mod batch;
mod external;
mod folder;
mod model;
mod overlay;
mod trainer;

pub use batch::evaluate;
pub use external::{WatchEnd, WatchedRun};
pub use folder::{Mode, RUN_FILES, RunDir, finished_summary, holds_run};
pub use model::{Model, build_model};
pub use overlay::{load_report, theory_for, write_report};
pub use trainer::{Outcome, StepOutcome, Trainer, build_mlp, total_steps};

use crate::config::{Config, RunSpec};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::io::checkpoint::Checkpoint;
use crate::io::{CHECKPOINT_FILE, CONFIG_FILE, SUMMARY_FILE};
use crate::nn::Scalar;
use crate::probe::StepRecord;
use crate::{prepare, resources};
use std::path::Path;

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
    /// A checkpoint is due: every `checkpoint_every` steps and when training is interrupted.
    /// `capture(metrics_len, config)` makes it ([`Trainer::checkpoint`]).
    fn on_checkpoint(&mut self, _capture: &dyn Fn(u64, String) -> Checkpoint) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Trains a fresh network on `data` as `spec` says, in float type F.
///
/// A run that diverges or is interrupted is not an error: it returns its [`Outcome`] with
/// [`crate::Summary::status`] saying so (a sweep records it as a result).
pub fn train<F: Scalar>(spec: &RunSpec, data: &Dataset, observer: &mut dyn Observer) -> Result<Outcome<F>> {
    train_from(spec, data, observer, None)
}

/// [`train`], continuing from a checkpoint (read from `path`) when one is given (see
/// [`Trainer::restore`]). The training loop.
pub fn train_from<F: Scalar>(
    spec: &RunSpec,
    data: &Dataset,
    observer: &mut dyn Observer,
    resume: Option<(&Path, &Checkpoint)>,
) -> Result<Outcome<F>> {
    let mut trainer = Trainer::<F>::new(spec, data)?;
    if let Some((path, ck)) = resume {
        trainer.restore(path, ck)?;
    }
    observer.on_start(trainer.total_steps());
    while !trainer.is_done() {
        let s = trainer.step()?;
        if let Some(rec) = &s.record {
            observer.on_record(rec)?;
        }
        if s.diverged {
            break;
        }
        observer.on_step(s.step, s.loss);
        let stop = observer.should_stop();
        if stop || trainer.checkpoint_due() {
            observer.on_checkpoint(&|len, config| trainer.checkpoint(len, config))?;
        }
        if stop {
            trainer.interrupt();
        }
    }
    if let Some(rec) = trainer.final_probe() {
        observer.on_record(&rec)?;
    }
    Ok(trainer.into_outcome())
}

/// Loads the data a spec names, as a fresh run sees it (columns chosen, standardised when the
/// spec says so; see [`prepare::load`]).
pub fn load_data(spec: &RunSpec) -> Result<Dataset> {
    prepare::load(spec, None).map(|p| p.data)
}

/// Refuses a training run of `spec` on `data` whose estimated memory exceeds `max_memory` or
/// the available memory ([`resources::training`]).
pub fn check_memory(spec: &RunSpec, data: &Dataset) -> Result<()> {
    let estimate = resources::training(spec, data);
    resources::check(&estimate, spec.max_memory, "this run", "use a smaller --width, --depth or --batch-size")
}

/// Sends records and checkpoints to the run folder, then to the caller's observer.
struct Tee<'a> {
    dir: &'a mut RunDir,
    ui: &'a mut dyn Observer,
}

impl Observer for Tee<'_> {
    fn on_start(&mut self, total_steps: u64) {
        self.ui.on_start(total_steps);
    }
    fn on_step(&mut self, step: u64, loss: f64) {
        self.ui.on_step(step, loss);
    }
    fn on_record(&mut self, record: &StepRecord) -> Result<()> {
        self.dir.append(record)?;
        self.ui.on_record(record)
    }
    fn should_stop(&mut self) -> bool {
        self.ui.should_stop()
    }
    fn on_checkpoint(&mut self, capture: &dyn Fn(u64, String) -> Checkpoint) -> Result<()> {
        self.dir.save_checkpoint(capture)?;
        self.ui.on_checkpoint(capture)
    }
}

/// Trains `config` into the folder `dir` (opened as `mode` says: [`Mode::New`] refuses a folder
/// holding a run, [`Mode::Overwrite`] replaces it), in f32; validates everything and loads the
/// data and refuses a run that does not fit in memory ([`check_memory`]) before the folder is
/// touched. Writes `config.toml` (resolved), `data.json` (and `standardize.safetensors` when
/// standardised), `metrics.jsonl`, checkpoints, `weights.safetensors` and `summary.json`. A
/// diverged or interrupted run is a result, not an error.
pub fn train_into(config: &Config, dir: &Path, mode: Mode, ui: &mut dyn Observer) -> Result<(RunSpec, Outcome<f32>)> {
    let spec = config.resolve()?;
    let prepared = prepare::load(&spec, None)?;
    check_memory(&spec, &prepared.data)?;
    let mut folder = RunDir::open(dir, &config.resolved(&spec), mode)?;
    prepared.write(dir)?;
    let data = prepared.data;
    let outcome = train_from::<f32>(&spec, &data, &mut Tee { dir: &mut folder, ui }, None)?;
    folder.finish(&outcome)?;
    Ok((spec, outcome))
}

/// Continues the run in `dir` from its `checkpoint.safetensors`, or from step 0 when it was
/// stopped before its first checkpoint; `metrics.jsonl` is cut back to the checkpoint's length.
/// The data is prepared as the run's `data.json` and `standardize.safetensors` say (the same
/// class numbering and standardisation).
pub fn resume(dir: &Path, ui: &mut dyn Observer) -> Result<(RunSpec, Outcome<f32>)> {
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        return Err(Error::Folder {
            path: dir.into(),
            msg: format!(
                "holds no {CONFIG_FILE}, so it is not a run folder and nothing can be resumed; start the run without --resume"
            ),
        });
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|err| Error::Io {
        action: "cannot read",
        path: cfg_path.clone(),
        err,
    })?;
    let config = Config::from_toml(&text, &cfg_path.display().to_string())?;
    let spec = config.resolve()?;
    let data = prepare::load(&spec, Some(dir))?.data;
    check_memory(&spec, &data)?;
    let ck_path = dir.join(CHECKPOINT_FILE);
    let ck = if ck_path.is_file() { Some(Checkpoint::read(&ck_path)?) } else { None };
    if let Some(ck) = &ck
        && ck.meta.config != config.to_toml()
    {
        return Err(Error::Checkpoint {
            path: ck_path,
            msg: format!("it was written for another config than {}", cfg_path.display()),
        });
    }
    let mut folder = RunDir::open(dir, &config, Mode::Resume(ck.as_ref().map_or(0, |c| c.meta.metrics_len)))?;
    let summary = dir.join(SUMMARY_FILE);
    if summary.exists() {
        std::fs::remove_file(&summary).map_err(|err| Error::Io { action: "cannot remove", path: summary, err })?;
    }
    let resume = ck.as_ref().map(|c| (ck_path.as_path(), c));
    let outcome = train_from::<f32>(&spec, &data, &mut Tee { dir: &mut folder, ui }, resume)?;
    folder.finish(&outcome)?;
    Ok((spec, outcome))
}
