//! From a checked config to the data a run sees: load, choose columns, standardise; and the facts
//! saved beside the run (`data.json`, `standardize.safetensors`), which `probe --config
//! RUN/config.toml` and `train --resume` read back so that they number classes and scale inputs
//! exactly as the run did.

use crate::config::RunSpec;
use crate::data::standardize::{Scope, Standardizer, q0};
use crate::data::{self, DataSpec, Dataset, LoadOptions};
use crate::error::Result;
pub use crate::io::data_info::{DataInfo, read_info};
use crate::io::{DATA_FILE, STANDARDIZE_FILE};
use crate::nn::Loss;
use std::path::Path;

/// The data of a run and what was fitted on it.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Both splits, standardised when asked.
    pub data: Dataset,
    /// The fitted (or saved) standardisation.
    pub standardizer: Option<Standardizer>,
    /// What goes into `data.json`.
    pub info: DataInfo,
}

/// Loads the data `spec` names. With `saved` (a run folder), class names and the standardisation
/// come from its `data.json` and `standardize.safetensors` instead of being found anew.
pub fn load(spec: &RunSpec, saved: Option<&Path>) -> Result<Prepared> {
    let info = saved.map(read_info).transpose()?.flatten();
    let class_names = info.as_ref().and_then(|i| i.classes.as_deref());
    let mut data = data::load(
        &spec.data,
        &LoadOptions {
            target: spec.target.as_deref(),
            classes: spec.loss == Loss::CrossEntropy,
            seed: spec.seed,
            test_fraction: spec.test_fraction,
            features: spec.features.as_deref(),
            drop: spec.drop.as_deref(),
            class_names,
        },
    )?;
    let standardizer = if spec.standardize {
        let file = saved.map(|d| d.join(STANDARDIZE_FILE)).filter(|f| f.is_file());
        let s = match file {
            Some(f) => Standardizer::read(&f)?,
            None => {
                let scope = match spec.data {
                    DataSpec::Mnist(_) | DataSpec::Cached(_) => Scope::Global,
                    _ => Scope::Feature,
                };
                Standardizer::fit(data.train.x.view(), scope)
            }
        };
        s.apply_to(&mut data)?;
        Some(s)
    } else {
        None
    };
    let info = DataInfo {
        data: spec_name(&spec.data),
        inputs: data.inputs(),
        outputs: data.outputs(),
        train_rows: data.train.len(),
        test_rows: data.test.len(),
        classes: data.classes.clone(),
        standardized: standardizer.is_some(),
        q0: q0(data.train.x.view()),
    };
    Ok(Prepared { data, standardizer, info })
}

fn spec_name(spec: &DataSpec) -> String {
    match spec {
        DataSpec::Regression => "regression".into(),
        DataSpec::Spirals => "spirals".into(),
        DataSpec::Mnist(dir) => format!("mnist:{}", dir.display()),
        DataSpec::Cached(name) => name.to_string(),
        DataSpec::Csv(file) => format!("csv:{}", file.display()),
        DataSpec::Adding(_) => "adding".into(),
        DataSpec::Copy(_) => "copy".into(),
    }
}

impl Prepared {
    /// Writes `data.json` and, when standardised, `standardize.safetensors` into `dir`
    /// (atomically, each).
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::io::write_json(&dir.join(DATA_FILE), &self.info)?;
        if let Some(s) = &self.standardizer {
            crate::io::write_atomic(&dir.join(STANDARDIZE_FILE), &s.to_bytes())?;
        }
        Ok(())
    }
}
