//! `gradscope train`: one run, a fresh one or one continued from its checkpoint.

use super::Status;
use super::args::{self, TrainArgs};
use super::output::{self, Progress};
use clap::ArgMatches;
use clap::parser::ValueSource;
use gradscope::config::{Config, RunSpec};
use gradscope::error::Error;
use gradscope::error::Named;
use gradscope::io::CONFIG_FILE;
use gradscope::run::{self, Mode, Outcome};
use gradscope::summary::{RunStatus, Summary};
use std::path::Path;

/// Trains `config` into `dir` with a progress bar when `progress`; `overwrite` replaces a run
/// there (else such a folder is refused, exit 2). Saves the command line beside the run.
pub fn train_config(
    config: &Config,
    dir: &Path,
    progress: bool,
    overwrite: bool,
) -> anyhow::Result<(RunSpec, Outcome<f32>)> {
    let mode = if overwrite { Mode::Overwrite } else { Mode::New };
    let r = run::train_into(config, dir, mode, &mut Progress::new(progress))?;
    save_command(dir)?;
    Ok(r)
}

/// Saves this process's command line in a run folder, unless there is one: a resumed run
/// keeps the command line that started it.
fn save_command(dir: &Path) -> anyhow::Result<()> {
    if !dir.join(gradscope::io::COMMAND_FILE).exists() {
        super::report::save_command(dir)?;
    }
    Ok(())
}

/// Continues the run in `dir` (see [`run::resume`]).
fn resume(dir: &Path, progress: bool) -> anyhow::Result<(RunSpec, Outcome<f32>)> {
    let r = run::resume(dir, &mut Progress::new(progress))?;
    save_command(dir)?;
    Ok(r)
}

/// The exit status of a run that ended this way.
pub fn status_of(s: &Summary) -> Status {
    match s.status {
        RunStatus::Interrupted => Status::Interrupted,
        RunStatus::Diverged => Status::CheckFailed,
        RunStatus::Completed => Status::Ok,
    }
}

/// Runs `gradscope train`.
pub fn run(a: &TrainArgs, matches: &ArgMatches) -> anyhow::Result<Status> {
    super::install_signal_handlers()?;
    let progress = !a.quiet && !a.json;
    let (dir, (spec, outcome)) = match &a.resume {
        Some(dir) => {
            let out_given = matches.value_source("out") == Some(ValueSource::CommandLine);
            if let Some(key) = args::first_given(&a.keys).or(out_given.then_some("out")) {
                return Err(Error::invalid(
                    key.replace('_', "-"),
                    "(given with --resume)",
                    format!("--resume takes every setting from {}; drop this flag", dir.join(CONFIG_FILE).display()),
                )
                .into());
            }
            if let Some(s) = run::finished_summary(dir)? {
                if !a.quiet && !a.json {
                    crate::outln!(
                        "{} already finished ({:?} after {} steps); nothing to resume",
                        dir.display(),
                        s.status,
                        s.steps
                    );
                }
                return Ok(status_of(&s));
            }
            (dir, resume(dir, progress)?)
        }
        None => {
            let config = args::merge(a.config.as_deref(), &a.keys)?;
            (&a.out, train_config(&config, &a.out, progress, a.overwrite)?)
        }
    };
    if a.json {
        crate::outln!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else if !a.quiet {
        let hidden = spec.recurrent.as_ref().map_or(spec.activation.name(), |r| r.cell.name());
        output::print_summary(&outcome.summary, &outcome.first, &outcome.last, &hidden, dir);
    }
    let status = status_of(&outcome.summary);
    if !a.no_report && status != Status::Interrupted {
        let html = super::report::make(std::slice::from_ref(dir), dir)?;
        if !a.quiet && !a.json {
            crate::outln!("report: {}", html.display());
        }
    }
    Ok(status)
}
