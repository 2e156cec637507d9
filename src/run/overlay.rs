//! Reports of run folders with theory drawn over them: the report reads records and draws,
//! and this computes what the mean-field theory predicts for each run's config.

use crate::config::Config;
use crate::error::Result;
use crate::nn::Activation;
use crate::report::{self, Report, Theory};
use std::path::{Path, PathBuf};

/// What theory predicts for a run of `config`: the mean-field E‖∂L/∂z_l‖² at initialisation
/// (`theory::predicted_decay`, the init's σ_w², σ_b² from `theory::init_variances` in square
/// layers of the run's width, inputs with q⁰ = 1) and the activation's max φ′. Parts that the
/// config or the theory cannot give are None.
pub fn theory_for(config: &Config) -> Theory {
    let act = Activation::new(config.activation, config.negative_slope);
    let (w, d) = (config.width, config.depth);
    let v = crate::theory::init_variances(config.init, act, w, w, config.sigma_w2, config.sigma_b2);
    let decay = crate::theory::predicted_decay(act, v.sigma_w2, v.sigma_b2, 1.0, d).ok();
    Theory { decay, max_derivative: Some(act.max_derivative()) }
}

/// Reads run folders (or folders of run folders) into a [`Report`] with each run's
/// [`theory_for`]; `command` is shown as the report's provenance.
pub fn load_report(runs: &[PathBuf], command: String) -> Result<Report> {
    let mut report = Report::load(runs, command)?;
    for run in &mut report.runs {
        run.theory = theory_for(&run.config);
    }
    Ok(report)
}

/// [`load_report`], written into `out` (`report.html` and `figures/`); returns the page's path.
pub fn write_report(runs: &[PathBuf], out: &Path, command: String) -> Result<PathBuf> {
    Ok(report::write(&load_report(runs, command)?, out)?.html)
}
