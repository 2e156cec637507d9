//! Run folders exported for other tools: TensorBoard event files ([`tensorboard`]) and one flat
//! CSV (`run, step, layer, field, value`) for pandas ([`rows`], [`csv_text`], [`write_csv`]).
//!
//! Both read the records a report reads ([`Report::load`]) and name layers as the report does
//! ([`Run::layer_name`]: the module names of a watched PyTorch model, else the index).

pub mod tensorboard;

use crate::error::{Error, Result};
use crate::probe::{LayerStats, StepRecord};
use crate::report::{Report, Run};
use std::path::Path;

/// One number of a run: at a step, of a layer (empty for the step's own numbers) and a field.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The run's label (what tells it from the other runs; its folder name when alone).
    pub run: String,
    /// The probed step.
    pub step: u64,
    /// The layer's name; empty for the step's own fields (loss, accuracy, vanishing ratio).
    pub layer: String,
    /// The record's field (`grad_w_norm`, `train_loss`, …).
    pub field: &'static str,
    /// Its value (NaN where the record holds null).
    pub value: f64,
}

/// A field's name and how to read it from a step's record.
pub type StepField = (&'static str, fn(&StepRecord) -> Option<f64>);

/// A field's name and how to read it from a layer's statistics.
pub type LayerField = (&'static str, fn(&LayerStats) -> Option<f64>);

/// The per-step fields exported, with how to read them from a record.
pub const STEP_FIELDS: [StepField; 5] = [
    ("train_loss", |r| Some(r.train_loss)),
    ("test_loss", |r| r.test_loss),
    ("test_accuracy", |r| r.test_accuracy),
    ("vanishing_ratio", |r| Some(r.vanishing_ratio)),
    ("grad_norm", |r| r.grad_norm),
];

/// The per-layer fields exported (every scalar of [`LayerStats`]; the φ′ histogram is left out).
pub const LAYER_FIELDS: [LayerField; 16] = [
    ("grad_w_norm", |l| Some(l.grad_w_norm)),
    ("grad_b_norm", |l| Some(l.grad_b_norm)),
    ("grad_z_norm", |l| Some(l.grad_z_norm)),
    ("grad_h_norm", |l| Some(l.grad_h_norm)),
    ("act_mean", |l| Some(l.act_mean)),
    ("act_std", |l| Some(l.act_std)),
    ("act_p05", |l| Some(l.act_p05)),
    ("act_p50", |l| Some(l.act_p50)),
    ("act_p95", |l| Some(l.act_p95)),
    ("dact_mean", |l| Some(l.dact_mean)),
    ("saturation", |l| Some(l.saturation)),
    ("weight_norm", |l| Some(l.weight_norm)),
    ("update_ratio", |l| l.update_ratio),
    ("norm_grad_w_norm", |l| l.norm_grad_w_norm),
    ("norm_grad_b_norm", |l| l.norm_grad_b_norm),
    ("shortcut_grad_w_norm", |l| l.shortcut_grad_w_norm),
];

/// Every number of a run's records, step by step: the step's fields, then each layer's. Fields
/// a record leaves out (null optional fields) give no row; a NaN (a null number) does.
pub fn rows(run: &Run) -> Vec<Row> {
    let names: Vec<String> = (0..run.layers()).map(|l| run.layer_name(l)).collect();
    let mut out = Vec::new();
    for rec in &run.records {
        let row = |layer: String, field, value| Row { run: run.label.clone(), step: rec.step, layer, field, value };
        for (field, get) in STEP_FIELDS {
            if let Some(v) = get(rec) {
                out.push(row(String::new(), field, v));
            }
        }
        for (l, stats) in rec.layers.iter().enumerate() {
            let name = names.get(l).cloned().unwrap_or_else(|| l.to_string());
            for (field, get) in LAYER_FIELDS {
                if let Some(v) = get(stats) {
                    out.push(row(name.clone(), field, v));
                }
            }
        }
    }
    out
}

/// The CSV text of every run: a header `run,step,layer,field,value`, then one row per number
/// (NaN and infinities written as `NaN`, `inf`, `-inf`, which pandas reads).
pub fn csv_text(report: &Report) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = "gradscope internal error: a CSV into memory cannot fail";
    w.write_record(["run", "step", "layer", "field", "value"]).expect(io);
    for run in &report.runs {
        for r in rows(run) {
            let value = if r.value.is_nan() { "NaN".to_string() } else { format!("{}", r.value) };
            w.write_record([r.run.as_str(), &r.step.to_string(), &r.layer, r.field, &value]).expect(io);
        }
    }
    w.into_inner().expect(io)
}

/// Writes [`csv_text`] to `path` atomically.
pub fn write_csv(report: &Report, path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::invalid("csv", path.display(), "is a folder; give a file name (e.g. runs.csv)"));
    }
    crate::io::write_atomic(path, &csv_text(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    #[test]
    fn csv_has_a_row_per_number_and_reads_back() {
        let report = sample::two_runs();
        let text = String::from_utf8(csv_text(&report)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("run,step,layer,field,value"));
        // per record: train_loss, test_loss, vanishing_ratio, then 4 layers × (13 fields, no
        // optional ones but update_ratio when present)
        let run = &report.runs[0];
        let per_layer = LAYER_FIELDS.iter().filter(|(_, get)| get(&run.records[0].layers[0]).is_some()).count();
        let per_record = 3 + run.layers() * per_layer;
        assert_eq!(text.lines().count(), 1 + 2 * run.records.len() * per_record);
        let first_layer_norm = run.records[0].layers[0].grad_w_norm;
        let want = format!("{},0,0,grad_w_norm,{}", run.label, first_layer_norm);
        assert!(text.lines().any(|l| l == want), "no line {want}");
    }
}
