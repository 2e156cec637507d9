//! The report model: run folders read back from their files (`config.toml`, `metrics.jsonl`,
//! `summary.json`, `command.txt`), never from a network.

use crate::config::Config;
use crate::error::{Error, Named, Result};
use crate::io::data_info::{DataInfo, read_info};
use crate::io::{COMMAND_FILE, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE};
use crate::probe::StepRecord;
use crate::summary::Summary;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything a report shows: the runs, and how the report was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The command line that made the report.
    pub command: String,
    /// gradscope's version.
    pub version: String,
    /// The runs, in the order given.
    pub runs: Vec<Run>,
}

/// One run folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The folder, as given.
    pub dir: String,
    /// What tells this run from the others (see [`labels`]).
    pub label: String,
    /// The resolved config.
    pub config: Config,
    /// The summary; None when the run did not finish.
    pub summary: Option<Summary>,
    /// The probed steps, in order.
    pub records: Vec<StepRecord>,
    /// The command line that made the run, when it was saved.
    pub command: Option<String>,
    /// Predictions for this run's config, computed by the caller (empty: none drawn).
    pub theory: Theory,
    /// The model of a run trained outside gradscope (the `[model]` table of its config.toml);
    /// None for gradscope's own networks.
    pub model: Option<ModelDescription>,
    /// What the run's data was (its `data.json`: shape, class names, standardisation, q⁰); None
    /// for runs written before gradscope saved it, and for watched models.
    pub data: Option<DataInfo>,
}

/// The model of a run that another trainer wrote (the Python package's `gradscope.watch` of a
/// PyTorch model): the `[model]` table of its `config.toml`. Its records have one layer per
/// entry of `layers`, in the order the forward pass ran them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescription {
    /// The framework that trained it (`pytorch`).
    pub framework: String,
    /// The model's class (`Sequential`, `Net`, …).
    pub class: String,
    /// Trainable parameters (entries).
    pub parameters: u64,
    /// The watched layers, in execution order.
    pub layers: Vec<ModelLayer>,
    /// The model as the framework prints it (`repr(model)`).
    #[serde(default)]
    pub text: String,
}

/// One watched layer of a [`ModelDescription`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLayer {
    /// Its name in the model (`named_modules()`: `features.0`, `encoder.layers.1.self_attn`).
    pub name: String,
    /// Its type (`Linear`, `Conv2d`, `LSTM`, `BatchNorm2d`, `MultiheadAttention`, …).
    pub kind: String,
    /// Trainable parameters (entries) of the layer.
    pub parameters: u64,
    /// The activation module that follows it, whose output the layer's activation statistics
    /// describe (`relu`, `tanh`, …); None when none does (statistics of the layer's own output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<String>,
}

/// The table of a run's `config.toml` that describes a model trained outside gradscope.
pub const MODEL_TABLE: &str = "model";

/// What theory predicts for a run, as plain numbers given by the report's caller (the report
/// reads records and draws; it computes no theory and builds no network).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Theory {
    /// The mean-field prediction of E‖∂L/∂z_l‖² at initialisation for l = 0..=depth, relative
    /// to its input (`theory::predicted_decay` for the run's activation and init).
    pub decay: Option<Vec<f64>>,
    /// The hidden activation's largest derivative, max φ′ (the φ′ histograms' scale).
    pub max_derivative: Option<f64>,
}

use crate::verdict::Evidence;
pub use crate::verdict::sci;

impl Run {
    /// The run's hidden activation, as its config names it.
    pub fn activation(&self) -> String {
        self.config.activation.name()
    }

    /// The step at which the loss became non-finite, if it did.
    pub fn diverged_at(&self) -> Option<u64> {
        self.summary.as_ref().filter(|s| s.diverged).map(|s| s.diverged_at_step.unwrap_or(0))
    }

    /// What the verdict is judged from: the first and last probe records, and the summary's
    /// final loss when the run finished (not when it was interrupted).
    pub fn evidence(&self) -> Evidence {
        let (first, last) = (self.records.first(), self.records.last());
        let finished = self.summary.as_ref().filter(|s| s.status != crate::summary::RunStatus::Interrupted);
        Evidence {
            layers: self.layers(),
            ratio_start: first.map_or(f64::NAN, |r| r.vanishing_ratio),
            ratio_end: finished.map(|s| s.vanishing_ratio_final).or(last.map(|r| r.vanishing_ratio)),
            loss_start: first.map_or(f64::NAN, |r| r.train_loss),
            loss_end: finished.map(|s| s.train_loss),
            diverged_at: self.diverged_at(),
        }
    }

    /// The name of layer `l` on figures: the model's own name for a watched model, else the
    /// index.
    pub fn layer_name(&self, l: usize) -> String {
        match self.model.as_ref().and_then(|m| m.layers.get(l)) {
            Some(layer) => layer.name.clone(),
            None => l.to_string(),
        }
    }

    /// Linear layers of the network (hidden layers + the output layer).
    pub fn layers(&self) -> usize {
        self.records.first().map_or(self.config.depth + 1, |r| r.layers.len())
    }

    /// One sentence on what happened, when something did: divergence or too few steps.
    pub fn warning(&self) -> Option<String> {
        if let Some(step) = self.diverged_at() {
            let shown = match self.records.last() {
                Some(r) if r.train_loss.is_finite() => {
                    format!("the figures show its probed steps up to step {}", r.step)
                }
                _ => "no probed step has a finite loss to show".to_string(),
            };
            return Some(format!(
                "the loss became NaN or infinite at step {step}; training stopped there, and {shown}."
            ));
        }
        if self.summary.is_none() {
            return Some(format!(
                "no summary.json: the run did not finish; {} probed steps are shown.",
                self.records.len()
            ));
        }
        if self.records.len() == 1 {
            return Some(format!(
                "only one probed step (step {}): there is no curve over training to draw.",
                self.records[0].step
            ));
        }
        None
    }
}

impl Report {
    /// Reads run folders. A folder without `metrics.jsonl` whose subfolders are runs stands for
    /// those runs (so `gradscope report gradscope-out/demo` compares the demo's runs).
    pub fn load(dirs: &[PathBuf], command: String) -> Result<Report> {
        let mut runs = Vec::new();
        for dir in dirs {
            if !dir.join(METRICS_FILE).is_file() && dir.is_dir() {
                let subs = run_subfolders(dir)?;
                if !subs.is_empty() {
                    for sub in subs {
                        runs.push(load_run(&sub)?);
                    }
                    continue;
                }
            }
            runs.push(load_run(dir)?);
        }
        Ok(Report::new(runs, command))
    }

    /// A report of these runs, labelled by what differs between their configs.
    pub fn new(mut runs: Vec<Run>, command: String) -> Report {
        let names = labels(&runs);
        for (run, label) in runs.iter_mut().zip(names) {
            run.label = label;
        }
        Report { command, version: env!("CARGO_PKG_VERSION").into(), runs }
    }

    /// The most layers of any run.
    pub fn max_layers(&self) -> usize {
        self.runs.iter().map(Run::layers).max().unwrap_or(0)
    }
}

/// Subfolders of `dir` that hold a `metrics.jsonl`, in natural order (depth2 before depth10).
fn run_subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|err| Error::Io { action: "cannot read", path: dir.into(), err })?;
    let mut subs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join(METRICS_FILE).is_file()).collect();
    subs.sort_by_key(|p| natural_key(&p.file_name().unwrap_or_default().to_string_lossy()));
    Ok(subs)
}

/// Splits a name into text and numbers so that "depth2" sorts before "depth10".
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_digit(10).unwrap_or(0) as u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d as u64);
                chars.next();
            }
            key.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    key.push((text, u64::MAX));
    key
}

/// The file by which a sweep marks a finished run (`crate::sweep::results::ROW_FILE`; the report
/// reads records and imports nothing from the sweep).
const SWEEP_ROW_FILE: &str = "row.json";

fn run_error(dir: &Path, msg: impl Into<String>) -> Error {
    Error::RunFolder { path: dir.into(), msg: msg.into() }
}

/// Reads one run folder.
pub fn load_run(dir: &Path) -> Result<Run> {
    if !dir.is_dir() {
        return Err(run_error(dir, "no such folder; pass a folder written by `gradscope train --out DIR` or `demo`"));
    }
    let read = |name: &str| -> Result<Option<String>> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::Io { action: "cannot read", path, err }),
        }
    };
    let missing = |name: &str| {
        run_error(dir, format!("no {name}: not a run folder; pass a folder written by `gradscope train --out DIR`"))
    };
    let metrics = read(METRICS_FILE)?.ok_or_else(|| {
        if dir.join(SWEEP_ROW_FILE).is_file() {
            run_error(
                dir,
                format!(
                    "no {METRICS_FILE}: this is a sweep's run, and sweeps delete each run's {METRICS_FILE} \
                     unless they are run with --keep-metrics; run the sweep again with --keep-metrics (its \
                     results.csv holds every run's final numbers meanwhile)"
                ),
            )
        } else if dir.join("runs").is_dir() && dir.join("results.csv").is_file() {
            run_error(
                dir,
                format!(
                    "is a sweep's folder, not a run's; pass its run folders ({}/runs/ID, or {}/runs for all of \
                     them), which hold {METRICS_FILE} when the sweep ran with --keep-metrics",
                    dir.display(),
                    dir.display()
                ),
            )
        } else {
            missing(METRICS_FILE)
        }
    })?;
    let config_text = read(CONFIG_FILE)?.ok_or_else(|| missing(CONFIG_FILE))?;
    let (config, model) = parse_config(&config_text, &dir.join(CONFIG_FILE).display().to_string())?;
    let mut records = Vec::new();
    for (i, line) in metrics.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let rec: StepRecord = serde_json::from_str(line).map_err(|e| {
            run_error(
                dir,
                format!("{METRICS_FILE} line {}: {e}; it was written by another gradscope version or cut short", i + 1),
            )
        })?;
        records.push(rec);
    }
    if records.is_empty() {
        return Err(run_error(
            dir,
            format!(
                "{METRICS_FILE} has no probed step: the run stopped before its first probe (at step 0); \
                 there is nothing to report: run it again"
            ),
        ));
    }
    let summary = read(SUMMARY_FILE)?
        .map(|text| serde_json::from_str::<Summary>(&text).map_err(|e| run_error(dir, format!("{SUMMARY_FILE}: {e}"))))
        .transpose()?;
    let command = read(COMMAND_FILE)?.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    Ok(Run {
        dir: dir.display().to_string(),
        label: String::new(),
        config,
        summary,
        records,
        command,
        theory: Theory::default(),
        model,
        data: read_info(dir)?,
    })
}

/// A run's `config.toml`: the config, and the `[model]` table of a model trained outside
/// gradscope (which `gradscope train` does not take: only reports read it).
pub fn parse_config(text: &str, origin: &str) -> Result<(Config, Option<ModelDescription>)> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| Error::invalid("config", origin, format!("not valid TOML: {e}")))?;
    let model = table
        .remove(MODEL_TABLE)
        .map(|v| {
            v.try_into::<ModelDescription>().map_err(|e| {
                Error::invalid(
                    "config",
                    origin,
                    format!("its [model] table is not a model description: {}", e.message().trim_end()),
                )
            })
        })
        .transpose()?;
    Ok((Config::from_table(table, origin)?, model))
}

/// Labels that tell runs apart: the config values that differ between them, the activation and
/// the init first ("sigmoid, pytorch init, depth 20"); the folder name where nothing differs,
/// or where more than [`MAX_LABEL_KEYS`] keys differ (such labels no longer fit a legend).
pub fn labels(runs: &[Run]) -> Vec<String> {
    let tables: Vec<toml::Table> =
        runs.iter().map(|r| toml::Table::try_from(&r.config).expect("configs serialise")).collect();
    let mut keys: Vec<&str> = vec!["activation", "init"];
    keys.extend(crate::config::CONFIG_KEYS.iter().filter(|k| !matches!(**k, "activation" | "init" | "threads")));
    let differing: Vec<&str> = keys
        .into_iter()
        .filter(|k| tables.iter().any(|t| t.get(*k) != tables.first().and_then(|f| f.get(*k))))
        .collect();
    let folder = |r: &Run| Path::new(&r.dir).file_name().map_or(r.dir.clone(), |n| n.to_string_lossy().into_owned());
    let mut out: Vec<String> = runs
        .iter()
        .zip(&tables)
        .map(|(run, t)| {
            let parts: Vec<String> = differing
                .iter()
                .map(|k| {
                    let v = match t.get(*k) {
                        Some(toml::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => "default".into(),
                    };
                    match *k {
                        "activation" | "data" | "loss" | "optimizer" => v,
                        "init" => format!("{v} init"),
                        k => format!("{} {v}", k.replace('_', " ")),
                    }
                })
                .collect();
            if parts.is_empty() || parts.len() > MAX_LABEL_KEYS { folder(run) } else { parts.join(", ") }
        })
        .collect();
    // runs that differ only in what labels leave out (threads) keep their folder names apart
    for i in 0..out.len() {
        if out.iter().filter(|l| **l == out[i]).count() > 1 && runs.len() > 1 {
            let dup = out[i].clone();
            for (j, run) in runs.iter().enumerate() {
                if out[j] == dup {
                    out[j] = format!("{dup} ({})", folder(run));
                }
            }
        }
    }
    out
}

/// Most differing config keys a label lists before it falls back to the folder name.
pub const MAX_LABEL_KEYS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn run_with(config: Config, dir: &str) -> Run {
        Run {
            dir: dir.into(),
            label: String::new(),
            config,
            summary: None,
            records: Vec::new(),
            command: None,
            theory: Theory::default(),
            model: None,
            data: None,
        }
    }

    #[test]
    fn labels_name_what_differs() {
        let base = Config { depth: 20, ..Config::default() };
        let runs = vec![
            run_with(Config { depth: 20, ..Config::from_flags(["--activation=sigmoid"]).unwrap() }, "out/a"),
            run_with(
                Config { depth: 20, ..Config::from_flags(["--activation=relu", "--init=kaiming_normal"]).unwrap() },
                "out/b",
            ),
        ];
        assert_eq!(labels(&runs), ["sigmoid, pytorch init", "relu, kaiming_normal init"]);
        let runs = vec![
            run_with(Config { depth: 2, ..base.clone() }, "x/d2"),
            run_with(Config { depth: 20, lr: Some(0.1), ..base.clone() }, "x/d20"),
        ];
        assert_eq!(labels(&runs), ["depth 2, lr default", "depth 20, lr 0.1"]);
        let same = vec![run_with(base.clone(), "x/one"), run_with(base.clone(), "y/two")];
        assert_eq!(labels(&same), ["one", "two"]);
        // more than MAX_LABEL_KEYS keys differ: the folder names
        let many = Config {
            residual: true,
            clip_norm: Some(1.0),
            sigma_w2: 2.0,
            depth: 20,
            ..Config::from_flags(["--norm=batch"]).unwrap()
        };
        let runs = vec![run_with(base, "x/plain"), run_with(many, "x/combined")];
        assert_eq!(labels(&runs), ["plain", "combined"]);
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["sigmoid-depth10", "sigmoid-depth2", "relu-depth20", "sigmoid-depth5"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["relu-depth20", "sigmoid-depth2", "sigmoid-depth5", "sigmoid-depth10"]);
    }
}
