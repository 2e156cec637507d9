//! `gradscope train`: one run.

use super::Status;
use super::args::{self, TrainArgs};
use super::output::{self, RunObserver};
use crate::config::{Config, RunSpec};
use crate::data::{self, Dataset, LoadOptions};
use crate::nn::Loss;
use crate::train::{Outcome, train};
use clap::ArgMatches;
use std::path::Path;

/// Loads the data a spec names.
pub fn load_data(spec: &RunSpec) -> crate::Result<Dataset> {
    data::load(
        &spec.data,
        &LoadOptions {
            target: spec.target.as_deref(),
            classes: spec.loss == Loss::CrossEntropy,
            seed: spec.seed,
            test_fraction: spec.test_fraction,
        },
    )
}

/// Trains `config` into `dir`; validates everything before the folder is created.
pub fn run_config(config: &Config, dir: &Path, progress: bool) -> anyhow::Result<(RunSpec, Outcome<f32>)> {
    let spec = config.resolve()?;
    let data = load_data(&spec)?;
    let resolved = config.resolved(&spec);
    let mut observer = RunObserver::create(dir, &resolved, progress)?;
    let outcome = train::<f32>(&spec, &data, &mut observer)?;
    observer.finish()?;
    output::write_outcome(dir, &outcome)?;
    super::report::save_command(dir)?;
    Ok((spec, outcome))
}

/// Runs `gradscope train`.
pub fn run(a: &TrainArgs, matches: &ArgMatches) -> anyhow::Result<Status> {
    let groups = [args::table(&a.data), args::table(&a.model), args::table(&a.optim), args::table(&a.schedule)];
    let config = args::merge(a.config.as_deref(), &groups, matches)?;
    let (spec, outcome) = run_config(&config, &a.out, !a.quiet && !a.json)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else if !a.quiet {
        output::print_summary(&outcome.summary, &outcome.first, &outcome.last, spec.activation.name(), &a.out);
    }
    if !a.no_report {
        let html = super::report::make(std::slice::from_ref(&a.out), &a.out)?;
        if !a.quiet && !a.json {
            println!("report: {}", html.display());
        }
    }
    Ok(if outcome.summary.diverged { Status::CheckFailed } else { Status::Ok })
}
