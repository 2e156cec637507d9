//! `data.json`: what a run's data was (its source, shape, class names, standardisation, q⁰),
//! written by [`crate::prepare`] and read back by `probe`, `train --resume` and the report.

use super::DATA_FILE;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a run's data was: `data.json` in its folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// The `data` key.
    pub data: String,
    /// Input features.
    pub inputs: usize,
    /// Network outputs (classes, or target columns).
    pub outputs: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Test rows.
    pub test_rows: usize,
    /// The class names, label i being `classes[i]`, for string labels (sorted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Whether the inputs were standardised (mean and std in `standardize.safetensors`).
    pub standardized: bool,
    /// q⁰ = mean over the training rows of ‖x‖²/inputs, as the network sees them: the input scale
    /// of the mean-field prediction drawn in reports.
    pub q0: f64,
}

/// Reads `data.json` in `dir`, if there is one.
pub fn read_info(dir: &Path) -> Result<Option<DataInfo>> {
    let path = dir.join(DATA_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::Io { action: "cannot read", path, err }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Data { path, msg: format!("is not a gradscope {DATA_FILE} ({e}); train the run again") })
}
