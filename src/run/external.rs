//! Run folders of models trained outside gradscope (the Python package's `gradscope.watch` of a
//! PyTorch model): the same files as gradscope's own runs (`config.toml` with a `[model]` table,
//! `metrics.jsonl`, `summary.json`), so that `gradscope report`, `export` and the verdicts read
//! them as they read any run. The trainer measures; this writes, in gradscope's one format.

use super::folder::{Mode, RunDir};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::probe::StepRecord;
use crate::report::ModelDescription;
use crate::report::model::MODEL_TABLE;
use crate::summary::{RunStatus, Summary};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How a watched run ended: what its trainer knows and its records do not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEnd {
    /// Updates applied.
    pub steps: u64,
    /// Epochs begun (1 when the trainer does not say).
    #[serde(default = "one")]
    pub epochs: u64,
    /// The last step's batch loss (the trainer's, not gradscope's loss over the training set).
    pub train_loss: Option<f64>,
    /// Test loss at the end, when the trainer measured one.
    #[serde(default)]
    pub test_loss: Option<f64>,
    /// Training accuracy at the end, when measured.
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    /// Test accuracy at the end, when measured.
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    /// Wall-clock seconds from the first watched step to the end.
    pub wall_time_s: f64,
    /// The trainer's seed (0 when unknown).
    #[serde(default)]
    pub seed: u64,
    /// The trainer's threads (1 when unknown).
    #[serde(default = "one_usize")]
    pub threads: usize,
}

fn one() -> u64 {
    1
}

fn one_usize() -> usize {
    1
}

/// An open run folder of a watched model: records are appended as the trainer makes them.
pub struct WatchedRun {
    folder: RunDir,
    layers: usize,
    first: Option<StepRecord>,
    last: Option<StepRecord>,
    diverged_at: Option<u64>,
}

impl WatchedRun {
    /// Creates the run folder `dir` (refusing one that holds a run unless `overwrite`) and
    /// writes `config.toml`: `config` (what the trainer's settings amount to in gradscope's
    /// keys) and the `[model]` table.
    pub fn create(dir: &Path, config: &Config, model: &ModelDescription, overwrite: bool) -> Result<Self> {
        if model.layers.is_empty() {
            return Err(Error::invalid(
                "model",
                &model.class,
                "has no layer with parameters to watch; pass a model with at least one (Linear, Conv2d, …)",
            ));
        }
        let table = toml::Table::from_iter([(
            MODEL_TABLE.to_string(),
            toml::Value::try_from(model).expect("gradscope internal error: model descriptions serialise"),
        )]);
        let text = format!("{}\n{}", config.to_toml(), toml::to_string(&table).expect("tables serialise"));
        let mode = if overwrite { Mode::Overwrite } else { Mode::New };
        let folder = RunDir::open_text(dir, text, mode)?;
        Ok(Self { folder, layers: model.layers.len(), first: None, last: None, diverged_at: None })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.folder.path()
    }

    /// Appends one probed step to `metrics.jsonl`, one entry per watched layer (in the order of
    /// the model description); its `vanishing_ratio` is computed here, as gradscope's probes do
    /// (grad_w_norm of the first layer over the last layer's).
    pub fn append(&mut self, mut record: StepRecord) -> Result<()> {
        if record.layers.len() != self.layers {
            return Err(Error::invalid(
                "record",
                record.step,
                format!(
                    "has {} layers but the model description lists {}; describe every watched layer",
                    record.layers.len(),
                    self.layers
                ),
            ));
        }
        if let Some(last) = &self.last
            && record.step <= last.step
        {
            return Err(Error::invalid(
                "record",
                record.step,
                format!("comes after step {}: steps must increase", last.step),
            ));
        }
        for (i, l) in record.layers.iter_mut().enumerate() {
            l.layer = i;
        }
        let (first, last) = (&record.layers[0], &record.layers[self.layers - 1]);
        record.vanishing_ratio = first.grad_w_norm / last.grad_w_norm;
        if !record.train_loss.is_finite() && self.diverged_at.is_none() {
            self.diverged_at = Some(record.step);
        }
        self.folder.append(&record)?;
        if self.first.is_none() {
            self.first = Some(record.clone());
        }
        self.last = Some(record);
        Ok(())
    }

    /// Writes `summary.json` from the records and what the trainer says; returns it.
    pub fn finish(self, data: &str, end: &WatchEnd) -> Result<Summary> {
        let ratio = |r: &Option<StepRecord>| r.as_ref().map_or(f64::NAN, |r| r.vanishing_ratio);
        let train_loss = end.train_loss.or(self.last.as_ref().map(|r| r.train_loss)).unwrap_or(f64::NAN);
        let summary = Summary {
            gradscope_version: env!("CARGO_PKG_VERSION").into(),
            data: data.into(),
            seed: end.seed,
            threads: end.threads,
            steps: end.steps,
            epochs: end.epochs,
            train_loss,
            test_loss: end.test_loss,
            train_accuracy: end.train_accuracy,
            test_accuracy: end.test_accuracy,
            vanishing_ratio: ratio(&self.first),
            vanishing_ratio_final: ratio(&self.last),
            diverged: self.diverged_at.is_some(),
            diverged_at_step: self.diverged_at,
            wall_time_s: end.wall_time_s,
            clipped_steps: 0,
            status: if self.diverged_at.is_some() { RunStatus::Diverged } else { RunStatus::Completed },
            nonfinite: None,
            skipped_steps: 0,
        };
        self.folder.finish_summary(&summary)?;
        Ok(summary)
    }
}
