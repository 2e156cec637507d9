//! `gradscope._core`: the Rust core as the Python package sees it. The record format, the run
//! folder, the verdicts, the theory, the report and the exports are the library's; this crate
//! only converts arguments (JSON text for records and descriptions, so that the library's serde
//! types are the one definition of each field) and errors (`GradscopeError`, a `ValueError`).

use gradscope::config::Config;
use gradscope::error::Named;
use gradscope::nn::{Activation, ActivationKind, Init};
use gradscope::probe::StepRecord;
use gradscope::report::{ModelDescription, Report};
use gradscope::run::{WatchEnd, WatchedRun};
use gradscope::theory::{Query, predict};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

create_exception!(_core, GradscopeError, PyValueError, "Bad input to gradscope: the message names the value and the fix.");

fn err(e: impl std::fmt::Display) -> PyErr {
    GradscopeError::new_err(e.to_string())
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| err(format!("{what}: {e}")))
}

/// An open run folder of a watched model (`gradscope.watch` writes through it).
#[pyclass(module = "gradscope._core")]
struct Run {
    inner: Option<WatchedRun>,
    data: String,
    path: PathBuf,
}

#[pymethods]
impl Run {
    /// Appends one probed step (a `metrics.jsonl` record as JSON text).
    fn append(&mut self, record_json: &str) -> PyResult<()> {
        let record: StepRecord = json("record", record_json)?;
        let run = self.inner.as_mut().ok_or_else(|| err("this run is finished: start another watch"))?;
        run.append(record).map_err(err)
    }

    /// Writes `summary.json` (from the records and `end_json`, a `WatchEnd` as JSON text) and
    /// returns it as JSON text.
    fn finish(&mut self, end_json: &str) -> PyResult<String> {
        let end: WatchEnd = json("end", end_json)?;
        let run = self.inner.take().ok_or_else(|| err("this run is already finished"))?;
        let summary = run.finish(&self.data, &end).map_err(err)?;
        serde_json::to_string(&summary).map_err(err)
    }

    /// The run folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Creates a run folder: `config_json` holds gradscope config keys, `model_json` the model
/// description (`[model]` of config.toml). Refuses a folder holding a run unless `overwrite`.
#[pyfunction]
fn create_run(dir: PathBuf, config_json: &str, model_json: &str, overwrite: bool) -> PyResult<Run> {
    let table: toml::Table = json("config", config_json)?;
    let config = Config::from_table(table, "gradscope.watch's config").map_err(err)?;
    let model: ModelDescription = json("model", model_json)?;
    let inner = WatchedRun::create(&dir, &config, &model, overwrite).map_err(err)?;
    Ok(Run { inner: Some(inner), data: config.data.clone(), path: dir })
}

/// Writes `report.html` and `figures/` of `runs` into `out`; returns the page's path.
#[pyfunction]
fn write_report(runs: Vec<PathBuf>, out: PathBuf, command: String) -> PyResult<PathBuf> {
    gradscope::run::write_report(&runs, &out, command).map_err(err)
}

/// The verdict of each run (the sentence `gradscope report` and `train` print).
#[pyfunction]
fn verdicts(runs: Vec<PathBuf>) -> PyResult<Vec<String>> {
    let report = Report::load(&runs, String::new()).map_err(err)?;
    Ok(report.runs.iter().map(|r| gradscope::verdict::sentence(&r.evidence())).collect())
}

/// The mean-field prediction (`gradscope theory --json`'s `theory` field) as JSON text.
#[pyfunction]
#[pyo3(signature = (activation, init, sigma_w2, sigma_b2, critical, q0, q0_fixed, depth, width, negative_slope))]
#[allow(clippy::too_many_arguments)]
fn theory_json(
    activation: &str,
    init: &str,
    sigma_w2: Option<f64>,
    sigma_b2: f64,
    critical: bool,
    q0: f64,
    q0_fixed: bool,
    depth: usize,
    width: usize,
    negative_slope: f64,
) -> PyResult<String> {
    let activation = Activation::new(ActivationKind::parse("activation", activation).map_err(err)?, negative_slope);
    let init = Init::parse("init", init).map_err(err)?;
    let q = Query { activation, init, sigma_w2, sigma_b2, critical, q0, q0_fixed, depth, width };
    serde_json::to_string(&predict(&q).map_err(err)?).map_err(err)
}

/// max φ′ of an activation (the scale of the saturation threshold, max φ′ / 20).
#[pyfunction]
fn max_derivative(activation: &str, negative_slope: f64) -> PyResult<f64> {
    Ok(Activation::new(ActivationKind::parse("activation", activation).map_err(err)?, negative_slope).max_derivative())
}

/// Writes TensorBoard event files of `runs` under `dir` (one subfolder per run); returns them.
#[pyfunction]
fn export_tensorboard(runs: Vec<PathBuf>, dir: PathBuf) -> PyResult<Vec<PathBuf>> {
    let report = Report::load(&runs, String::new()).map_err(err)?;
    gradscope::export::tensorboard::write(&report, &dir).map_err(err)
}

/// Writes the flat CSV (`run,step,layer,field,value`) of `runs` to `path`.
#[pyfunction]
fn export_csv(runs: Vec<PathBuf>, path: PathBuf) -> PyResult<()> {
    let report = Report::load(&runs, String::new()).map_err(err)?;
    gradscope::export::write_csv(&report, &path).map_err(err)
}

/// Whether `dir` holds (part of) a run (config.toml, metrics.jsonl, summary.json, …).
#[pyfunction]
fn holds_run(dir: PathBuf) -> bool {
    gradscope::run::holds_run(&dir)
}

/// The gradscope core's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GradscopeError", m.py().get_type::<GradscopeError>())?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(create_run, m)?)?;
    m.add_function(wrap_pyfunction!(write_report, m)?)?;
    m.add_function(wrap_pyfunction!(verdicts, m)?)?;
    m.add_function(wrap_pyfunction!(theory_json, m)?)?;
    m.add_function(wrap_pyfunction!(max_derivative, m)?)?;
    m.add_function(wrap_pyfunction!(export_tensorboard, m)?)?;
    m.add_function(wrap_pyfunction!(export_csv, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(holds_run, m)?)?;
    Ok(())
}
