//! Reports of run folders with theory drawn over them: the report reads records and draws,
//! and this computes what the mean-field theory predicts for each run's config.

use crate::config::Config;
use crate::error::Result;
use crate::nn::Activation;
use crate::report::{self, Report, Theory};
use std::path::{Path, PathBuf};

/// What theory predicts for a run of `config`: the mean-field E‖∂L/∂z_l‖² at initialisation
/// (`theory::predicted_decay`, the init's σ_w², σ_b² from `theory::init_variances` in square
/// layers of the run's width) and the activation's max φ′. `q0` is the input scale the network
/// saw (mean ‖x‖²/inputs over the training rows, recorded in the run's `data.json`); None
/// (a run written before that file existed) takes q⁰ = 1, the scale of standardised inputs.
/// Parts that the config or the theory cannot give are None.
pub fn theory_for(config: &Config, q0: Option<f64>) -> Theory {
    let q0 = q0.filter(|q| q.is_finite() && *q > 0.0).unwrap_or(1.0);
    let act = Activation::new(config.activation, config.negative_slope);
    let (w, d) = (config.width, config.depth);
    let v = crate::theory::init_variances(config.init, act, w, w, config.sigma_w2, config.sigma_b2);
    let decay = crate::theory::predicted_decay(act, v.sigma_w2, v.sigma_b2, q0, d).ok();
    Theory { decay, max_derivative: Some(act.max_derivative()) }
}

/// Reads run folders (or folders of run folders) into a [`Report`] with each run's
/// [`theory_for`] (q⁰ from the run's `data.json`, when it has one); `command` is shown as the
/// report's provenance.
pub fn load_report(runs: &[PathBuf], command: String) -> Result<Report> {
    let mut report = Report::load(runs, command)?;
    for run in &mut report.runs {
        // the mean-field prediction is of gradscope's own MLPs, not of a watched model
        if run.model.is_none() {
            let q0 = crate::io::data_info::read_info(Path::new(&run.dir))?.map(|i| i.q0);
            run.theory = theory_for(&run.config, q0);
        }
    }
    Ok(report)
}

/// [`load_report`], written into `out` (`report.html` and `figures/`); returns the page's path.
pub fn write_report(runs: &[PathBuf], out: &Path, command: String) -> Result<PathBuf> {
    Ok(report::write(&load_report(runs, command)?, out)?.html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{ActivationKind, Init};

    /// The overlay starts from the run's recorded q⁰: for tanh, a larger input scale saturates
    /// more and predicts another decay than the q⁰ = 1 of a run without `data.json`.
    #[test]
    fn theory_uses_the_recorded_input_scale() {
        let config = Config {
            activation: ActivationKind::Tanh,
            init: Init::Gaussian,
            sigma_w2: 1.5,
            depth: 6,
            ..Config::default()
        };
        let default = theory_for(&config, None).decay.expect("a prediction for gaussian tanh");
        assert_eq!(theory_for(&config, Some(1.0)).decay.unwrap(), default, "q0 = 1 is what runs without data.json get");
        assert_eq!(theory_for(&config, Some(f64::NAN)).decay.unwrap(), default, "a bad record falls back to 1");
        let scaled = theory_for(&config, Some(25.0)).decay.unwrap();
        assert_eq!(scaled.len(), default.len());
        let rel = (scaled[0] / default[0] - 1.0).abs();
        assert!(rel > 1e-3, "q0 changed nothing: {scaled:?} {default:?}");
    }
}
