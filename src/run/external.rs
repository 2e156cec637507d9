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
            vanishing_ratio_time: None,
            vanishing_ratio_time_final: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::LayerStats;
    use crate::report::{ModelLayer, Report};

    fn model() -> ModelDescription {
        let layer = |name: &str, kind: &str, activation: Option<&str>| ModelLayer {
            name: name.into(),
            kind: kind.into(),
            parameters: 10,
            activation: activation.map(Into::into),
        };
        ModelDescription {
            framework: "pytorch".into(),
            class: "Net".into(),
            parameters: 30,
            layers: vec![
                layer("features.0", "Conv2d", Some("relu")),
                layer("features.1", "BatchNorm2d", None),
                layer("fc", "Linear", None),
            ],
            text: "Net(\n  (fc): Linear()\n)".into(),
        }
    }

    fn record(step: u64, first: f64) -> StepRecord {
        let layers = [first, 0.5, 2.0].iter().map(|&g| LayerStats { grad_w_norm: g, ..Default::default() }).collect();
        StepRecord::new(step, 0, 1.0 / (1.0 + step as f64), layers)
    }

    #[test]
    fn a_watched_run_reads_back_with_its_model() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("exp");
        let config = Config { data: "pytorch".into(), depth: 2, width: 0, ..Config::default() };
        let mut run = WatchedRun::create(&out, &config, &model(), false).unwrap();
        run.append(record(0, 0.002)).unwrap();
        run.append(record(10, 0.02)).unwrap();
        // a record with another number of layers, or going back in steps, is refused
        let mut short = record(20, 1.0);
        short.layers.pop();
        assert!(run.append(short).unwrap_err().to_string().contains("model description lists 3"));
        assert!(run.append(record(5, 1.0)).unwrap_err().to_string().contains("steps must increase"));
        let end = WatchEnd { steps: 11, epochs: 1, wall_time_s: 0.5, threads: 1, ..Default::default() };
        let summary = run.finish("pytorch", &end).unwrap();
        assert_eq!(summary.vanishing_ratio, 0.002 / 2.0);
        assert_eq!(summary.vanishing_ratio_final, 0.02 / 2.0);
        assert_eq!(summary.train_loss, 1.0 / 11.0); // the last record's, when the trainer gives none
        let report = Report::load(std::slice::from_ref(&out), String::new()).unwrap();
        let r = &report.runs[0];
        assert_eq!(r.model.as_ref(), Some(&model()));
        assert_eq!(r.config, config);
        assert_eq!((r.layer_name(0), r.layer_name(2)), ("features.0".to_string(), "fc".to_string()));
        assert_eq!(crate::report::figures::layer_names(&report), ["features.0", "features.1", "fc"]);
        // the heat map's rows carry the names too, and its panel widens for them
        let heat = crate::report::figures::heatmap(&report);
        let Some(crate::report::figures::Panel::Heat { y, .. }) = heat.panels.first() else { panic!("a heat map") };
        assert_eq!(y.labels, ["features.0", "features.1", "fc"]);
        let unnamed = Report::new(vec![crate::report::sample::run("out/x", "tanh", 2, 0.5, &[0, 10])], String::new());
        assert!(heat.size.0 > crate::report::figures::heatmap(&unnamed).size.0);
        // the folder now holds a run
        let again = WatchedRun::create(&out, &config, &model(), false).err().expect("refused");
        assert!(again.to_string().contains("overwrite"), "{again}");
        // `train --config` refuses the model table: it is not a config key
        let text = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(Config::from_toml(&text, "config.toml").unwrap_err().to_string().contains("model"));
    }
}
