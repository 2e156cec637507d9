//! `gradscope train`: one run, a fresh one or one continued from its checkpoint.

use super::Status;
use super::args::{self, TrainArgs};
use super::output::{self, Mode, RunObserver};
use crate::config::{CONFIG_KEYS, Config, RunSpec};
use crate::data::Dataset;
use crate::error::Error;
use crate::io::checkpoint::Checkpoint;
use crate::io::{CHECKPOINT_FILE, CONFIG_FILE, SUMMARY_FILE};
use crate::train::{Outcome, RunStatus, Summary, train_from};
use clap::ArgMatches;
use clap::parser::ValueSource;
use std::path::Path;

/// Loads the data a spec names (standardised when it says so).
pub fn load_data(spec: &RunSpec) -> crate::Result<Dataset> {
    crate::prepare::load(spec, None).map(|p| p.data)
}

/// Refuses a run whose estimated memory exceeds `max_memory` or the available memory.
fn check_memory(spec: &RunSpec, data: &Dataset) -> crate::Result<()> {
    let estimate = crate::resources::training(spec, data);
    crate::resources::check(&estimate, spec.max_memory, "this run", "use a smaller --width, --depth or --batch-size")
}

/// How [`run_config_with`] treats its output folder.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Replace a run already in the folder (else such a folder is refused, exit 2).
    pub overwrite: bool,
}

/// Trains `config` into `dir`, which must not hold a run; validates everything before the folder
/// is created. A diverged or interrupted run is a result (see [`Summary::status`]), not an error.
pub fn run_config(config: &Config, dir: &Path, progress: bool) -> anyhow::Result<(RunSpec, Outcome<f32>)> {
    run_config_with(config, dir, RunOptions { progress, overwrite: false })
}

/// [`run_config`] with options.
pub fn run_config_with(config: &Config, dir: &Path, opts: RunOptions) -> anyhow::Result<(RunSpec, Outcome<f32>)> {
    let spec = config.resolve()?;
    let prepared = crate::prepare::load(&spec, None)?;
    check_memory(&spec, &prepared.data)?;
    let resolved = config.resolved(&spec);
    let mode = if opts.overwrite { Mode::Overwrite } else { Mode::New };
    let mut observer = RunObserver::open(dir, &resolved, opts.progress, mode)?;
    prepared.write(dir)?;
    let outcome = train_from::<f32>(&spec, &prepared.data, &mut observer, None)?;
    finish(dir, observer, &outcome)?;
    Ok((spec, outcome))
}

fn finish(dir: &Path, observer: RunObserver, outcome: &Outcome<f32>) -> anyhow::Result<()> {
    observer.finish()?;
    output::write_outcome(dir, outcome)?;
    // a resumed run keeps the command line that started it
    if !dir.join(crate::io::COMMAND_FILE).exists() {
        super::report::save_command(dir)?;
    }
    Ok(())
}

/// The summary of a run in `dir` that ended (completed or diverged), if it has one.
pub fn finished_summary(dir: &Path) -> anyhow::Result<Option<Summary>> {
    let path = dir.join(SUMMARY_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).map_err(|err| Error::Io { action: "cannot read", path: path.clone(), err })?;
    let s: Summary = serde_json::from_str(&text).map_err(|e| Error::Folder {
        path: path.clone(),
        msg: format!("is not a gradscope summary ({e}); start afresh with --overwrite"),
    })?;
    Ok((s.status != RunStatus::Interrupted).then_some(s))
}

/// Continues the run in `dir` from its `checkpoint.safetensors`, or from step 0 when it was
/// stopped before its first checkpoint; `metrics.jsonl` is cut back to the checkpoint's length.
pub fn resume(dir: &Path, progress: bool) -> anyhow::Result<(RunSpec, Outcome<f32>)> {
    let cfg_path = dir.join(CONFIG_FILE);
    if !cfg_path.is_file() {
        return Err(Error::Folder {
            path: dir.into(),
            msg: format!("holds no {CONFIG_FILE}, so it is not a run folder and nothing can be resumed; start the run without --resume"),
        }
        .into());
    }
    let text = std::fs::read_to_string(&cfg_path).map_err(|err| Error::Io {
        action: "cannot read",
        path: cfg_path.clone(),
        err,
    })?;
    let config = Config::from_toml(&text, &cfg_path.display().to_string())?;
    let spec = config.resolve()?;
    let data = crate::prepare::load(&spec, Some(dir))?.data;
    check_memory(&spec, &data)?;
    let ck_path = dir.join(CHECKPOINT_FILE);
    let ck = if ck_path.is_file() { Some(Checkpoint::read(&ck_path)?) } else { None };
    if let Some(ck) = &ck
        && ck.meta.config != config.to_toml()
    {
        return Err(Error::Checkpoint {
            path: ck_path,
            msg: format!("it was written for another config than {}", cfg_path.display()),
        }
        .into());
    }
    let mut observer =
        RunObserver::open(dir, &config, progress, Mode::Resume(ck.as_ref().map_or(0, |c| c.meta.metrics_len)))?;
    let summary = dir.join(SUMMARY_FILE);
    if summary.exists() {
        std::fs::remove_file(&summary).map_err(|err| Error::Io { action: "cannot remove", path: summary, err })?;
    }
    let outcome = train_from::<f32>(&spec, &data, &mut observer, ck.as_ref().map(|c| (ck_path.as_path(), c)))?;
    finish(dir, observer, &outcome)?;
    Ok((spec, outcome))
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
            let given = |k: &str| matches.value_source(k) == Some(ValueSource::CommandLine);
            if let Some(key) = CONFIG_KEYS.iter().copied().chain(["out"]).find(|k| given(k)) {
                return Err(Error::invalid(
                    key.replace('_', "-"),
                    "(given with --resume)",
                    format!("--resume takes every setting from {}; drop this flag", dir.join(CONFIG_FILE).display()),
                )
                .into());
            }
            if let Some(s) = finished_summary(dir)? {
                if !a.quiet && !a.json {
                    println!(
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
            let groups = [args::table(&a.data), args::table(&a.model), args::table(&a.optim), args::table(&a.schedule)];
            let config = args::merge(a.config.as_deref(), &groups, matches)?;
            (&a.out, run_config_with(&config, &a.out, RunOptions { progress, overwrite: a.overwrite })?)
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcome.summary)?);
    } else if !a.quiet {
        output::print_summary(&outcome.summary, &outcome.first, &outcome.last, spec.activation.name(), dir);
    }
    let status = status_of(&outcome.summary);
    if !a.no_report && status != Status::Interrupted {
        let html = super::report::make(std::slice::from_ref(dir), dir)?;
        if !a.quiet && !a.json {
            println!("report: {}", html.display());
        }
    }
    Ok(status)
}
