//! `gradscope._core`: the Rust core as the Python package sees it. The record format, the run
//! folder, the verdicts, the theory, the report and the exports are the library's; this crate
//! only converts arguments (JSON text for records and descriptions, so that the library's serde
//! types are the one definition of each field) and errors (`GradscopeError`, a `ValueError`).

use gradscope::config::Config;
use gradscope::error::Named;
use gradscope::nn::{Activation, ActivationKind, Init};
use gradscope::probe::{LayerStats, StepRecord, flat};
use gradscope::report::{ModelDescription, Report};
use gradscope::run::{WatchEnd, WatchedRun};
use gradscope::theory::{Query, predict};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;

create_exception!(
    _core,
    GradscopeError,
    PyValueError,
    "Bad input to gradscope: the message names the value and the fix."
);

fn err(e: impl std::fmt::Display) -> PyErr {
    GradscopeError::new_err(e.to_string())
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| err(format!("{what}: {e}")))
}

/// The per-layer numbers `Run.append_values` takes, in this order (watch.py `_write`).
const FIELDS: [&str; 13] = [
    "grad_w_norm",
    "grad_b_norm",
    "grad_z_norm",
    "grad_h_norm",
    "act_mean",
    "act_std",
    "act_p05",
    "act_p50",
    "act_p95",
    "dact_mean",
    "saturation",
    "weight_norm",
    "update_ratio",
];

/// An open run folder of a watched model (`gradscope.watch` writes through it).
#[pyclass(module = "gradscope._core")]
struct Run {
    inner: Option<WatchedRun>,
    data: String,
    path: PathBuf,
}

#[pymethods]
impl Run {
    /// Appends one probed step from its numbers, without JSON on the way: `losses` = (train,
    /// test, test accuracy), `values` = [`FIELDS`] of each layer in turn (None for null), `hists`
    /// = each layer's φ′ histogram (empty for none).
    fn append_values(
        &mut self,
        step: u64,
        epoch: u64,
        losses: [Option<f64>; 3],
        values: Vec<Option<f64>>,
        hists: Vec<Vec<f64>>,
    ) -> PyResult<()> {
        if values.len() != FIELDS.len() * hists.len() {
            return Err(err(format!(
                "{} values for {} layers: each layer has {} ({})",
                values.len(),
                hists.len(),
                FIELDS.len(),
                FIELDS.join(", ")
            )));
        }
        let layers = values
            .chunks_exact(FIELDS.len())
            .zip(hists)
            .enumerate()
            .map(|(layer, (v, dact_hist))| {
                let f = |k: usize| v[k].unwrap_or(f64::NAN);
                LayerStats {
                    layer,
                    grad_w_norm: f(0),
                    grad_b_norm: f(1),
                    grad_z_norm: f(2),
                    grad_h_norm: f(3),
                    act_mean: f(4),
                    act_std: f(5),
                    act_p05: f(6),
                    act_p50: f(7),
                    act_p95: f(8),
                    dact_mean: f(9),
                    dact_hist,
                    saturation: f(10),
                    weight_norm: f(11),
                    update_ratio: v[12].filter(|r| r.is_finite()),
                    ..LayerStats::default()
                }
            })
            .collect();
        let [train, test_loss, test_accuracy] = losses;
        let mut record = StepRecord::new(step, epoch, train.unwrap_or(f64::NAN), layers);
        (record.test_loss, record.test_accuracy) = (test_loss, test_accuracy);
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

/// A CPU tensor's entries lent by the watch for one call: `(t.data_ptr(), t.numel(), t.dtype ==
/// torch.float64)` of a contiguous float32 or float64 tensor (watch.py `_lent`).
type Lent = (usize, usize, bool);

/// The entries of a lent tensor, as a slice of F (f32, or f64 for a float64 tensor).
///
/// Sound as long as the caller keeps the promise of [`Lent`]: the watch passes only tensors it
/// holds until the call returns, contiguous, on the CPU, of the dtype it names, which nothing
/// writes meanwhile (its hooks run on the training step's thread, between the step's operations).
/// What can be checked here is checked: a null or misaligned address is refused.
fn lent<'a, F>((address, len, _): Lent) -> PyResult<&'a [F]> {
    if len == 0 {
        return Ok(&[]);
    }
    addressable::<F>(address)?;
    // SAFETY: the caller's promise above: `len` initialised entries of F at `address`, alive and
    // unwritten for the duration of this call.
    Ok(unsafe { std::slice::from_raw_parts(address as *const F, len) })
}

/// As [`lent`], for a tensor the call writes (the watch's own buffer for a weight's copy).
fn lent_mut<'a, F>((address, len, _): Lent) -> PyResult<&'a mut [F]> {
    if len == 0 {
        return Ok(&mut []);
    }
    addressable::<F>(address)?;
    // SAFETY: as in `lent`; the buffer is the watch's own, aliased by no other lent tensor.
    Ok(unsafe { std::slice::from_raw_parts_mut(address as *mut F, len) })
}

/// Refuses a null or misaligned address for entries of F.
fn addressable<F>(address: usize) -> PyResult<()> {
    if address == 0 || !address.is_multiple_of(std::mem::align_of::<F>()) {
        return Err(err(format!("{address:#x} is not the address of a tensor's entries")));
    }
    Ok(())
}

fn same(a: Lent, b: Lent) -> PyResult<()> {
    if a.1 != b.1 || a.2 != b.2 {
        return Err(err(format!(
            "tensors of {} and {} entries ({} and {}) cannot be paired",
            a.1,
            b.1,
            if a.2 { "float64" } else { "float32" },
            if b.2 { "float64" } else { "float32" }
        )));
    }
    Ok(())
}

thread_local! {
    /// φ′ scratch (f32 and f64) and the detail sample, kept between calls: a layer's worth of
    /// fresh memory per call would cost more than the pass.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f64>, Vec<f64>)> = Default::default();
}

/// A layer's forward statistics as gradscope's probes take them (`probe::flat`), for the
/// watch: z, the layer's output, and h, its activation's output (z again without one);
/// `activation`: (gradscope's name, negative slope) or None. Returns (act_mean, act_std,
/// dact_mean, saturation, [p05, p50, p95] or None, φ′ histogram or None); dact_mean and
/// saturation are None without an activation.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn forward_stats(
    z: Lent,
    h: Lent,
    activation: Option<(String, f64)>,
    detail: bool,
) -> PyResult<(f64, f64, Option<f64>, Option<f64>, Option<[f64; 3]>, Option<Vec<f64>>)> {
    same(z, h)?;
    let activation = match activation {
        Some((name, slope)) => Some(Activation::new(ActivationKind::parse("activation", &name).map_err(err)?, slope)),
        None => None,
    };
    let s = SCRATCH.with_borrow_mut(|(d32, d64, sample)| -> PyResult<_> {
        let sample = detail.then_some(sample);
        Ok(if z.2 {
            flat::layer_forward_stats(lent::<f64>(z)?, lent::<f64>(h)?, activation, sample, d64)
        } else {
            flat::layer_forward_stats(lent::<f32>(z)?, lent::<f32>(h)?, activation, sample, d32)
        })
    })?;
    let dphi = activation.is_some();
    Ok((
        s.act_mean,
        s.act_std,
        dphi.then_some(s.dact_mean),
        dphi.then_some(s.saturation),
        detail.then_some([s.act_p05, s.act_p50, s.act_p95]),
        (detail && dphi).then_some(s.dact_hist),
    ))
}

/// Σ x² of a lent tensor, each square in f64.
#[pyfunction]
fn sum_sq(t: Lent) -> PyResult<f64> {
    Ok(if t.2 { flat::sum_sq(lent::<f64>(t)?) } else { flat::sum_sq(lent::<f32>(t)?) })
}

/// Σ x² of each lent tensor (one call for all of a layer list's gradients).
#[pyfunction]
fn sum_sqs(ts: Vec<Lent>) -> PyResult<Vec<f64>> {
    ts.into_iter().map(sum_sq).collect()
}

/// The bytes a lent tensor spans.
fn span(t: Lent) -> std::ops::Range<usize> {
    let size = if t.2 { 8 } else { 4 };
    t.0..t.0.saturating_add(t.1.saturating_mul(size))
}

/// Copies each `src` into its `dst` (the watch's buffers) and returns Σ src² of each, one pass
/// per pair. Refused: a pair of different sizes, or a `dst` that overlaps any tensor of the call
/// but itself.
#[pyfunction]
fn copy_sum_sqs(pairs: Vec<(Lent, Lent)>) -> PyResult<Vec<f64>> {
    for (k, &(src, dst)) in pairs.iter().enumerate() {
        same(src, dst)?;
        let d = span(dst);
        let others = pairs.iter().enumerate().flat_map(|(j, &(s, t))| [Some(s), (j != k).then_some(t)]);
        // an empty tensor spans no byte: it overlaps nothing
        if others.flatten().any(|o| {
            let o = span(o);
            !o.is_empty() && !d.is_empty() && o.start < d.end && d.start < o.end
        }) {
            return Err(err("a weight's copy would overlap a tensor it is copied from"));
        }
    }
    pairs
        .into_iter()
        .map(|(src, dst)| {
            Ok(if src.2 {
                flat::copy_sum_sq(lent::<f64>(src)?, lent_mut::<f64>(dst)?)
            } else {
                flat::copy_sum_sq(lent::<f32>(src)?, lent_mut::<f32>(dst)?)
            })
        })
        .collect()
}

/// Σ (a − b)² of each pair of lent tensors (the difference in their precision, squared in f64).
#[pyfunction]
fn diff_sum_sqs(pairs: Vec<(Lent, Lent)>) -> PyResult<Vec<f64>> {
    pairs
        .into_iter()
        .map(|(a, b)| {
            same(a, b)?;
            Ok(if a.2 {
                flat::diff_sum_sq(lent::<f64>(a)?, lent::<f64>(b)?)
            } else {
                flat::diff_sum_sq(lent::<f32>(a)?, lent::<f32>(b)?)
            })
        })
        .collect()
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
    m.add_function(wrap_pyfunction!(forward_stats, m)?)?;
    m.add_function(wrap_pyfunction!(sum_sq, m)?)?;
    m.add_function(wrap_pyfunction!(sum_sqs, m)?)?;
    m.add_function(wrap_pyfunction!(copy_sum_sqs, m)?)?;
    m.add_function(wrap_pyfunction!(diff_sum_sqs, m)?)?;
    Ok(())
}
