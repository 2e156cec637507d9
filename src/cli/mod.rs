//! The command-line interface: flags in, a validated config, then the library does the work.
//!
//! Exit codes: 0 success; 1 the run finished but a check failed (it diverged);
//! 2 an error (bad input, unreadable file), with nothing half-written; 130 interrupted by
//! Ctrl-C (SIGINT) or SIGTERM after writing a checkpoint.
// The flags' doc comments are clap's --help text, written for a terminal (`[base]`,
// `runs/<id>/`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod args;
mod bench;
mod data;
mod demo;
mod export;
mod output;
mod probe;
mod probe_recurrent;
mod report;
pub mod stdout;
mod sweep;
mod theory;
mod theory_recurrent;
mod train;

use args::{Cli, Command};
use clap::{CommandFactory, FromArgMatches};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How a command ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything as expected: exit 0.
    Ok,
    /// It ran, but a run diverged or a check failed: exit 1.
    CheckFailed,
    /// Interrupted (SIGINT, SIGTERM) after the current step, a checkpoint and the summary: exit 130.
    Interrupted,
}

static INTERRUPTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Makes SIGINT and SIGTERM set the flag that [`interrupted`] reads, instead of killing the
/// process; a second signal while the flag is set ends the process at once (exit 130). Called
/// by the commands that train, which check the flag once a step; the other commands keep the
/// default behaviour.
pub fn install_signal_handlers() -> anyhow::Result<()> {
    let mut result = Ok(());
    INTERRUPTED.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // first the conditional exit (effective once the flag is set), then the flag itself
            let r = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&flag)));
            if let Err(e) = r {
                result = Err(anyhow::anyhow!("cannot install the signal handler: {e}"));
            }
        }
        flag
    });
    result
}

/// True once SIGINT or SIGTERM arrived (after [`install_signal_handlers`]).
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<Status> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (_, sub) = matches.subcommand().expect("a subcommand is required");
    match cli.command {
        Command::Demo(a) => demo::run(&a),
        Command::Train(a) => train::run(&a, sub),
        Command::Probe(a) => probe::run(&a, sub),
        Command::Bench(a) => bench::run(&a),
        Command::Report(a) => report::run(&a),
        Command::Theory(a) => theory::run(&a),
        Command::Sweep(a) => sweep::run(&a),
        Command::Merge(a) => sweep::run_merge(&a),
        Command::Phase(a) => sweep::run_phase(&a),
        Command::Export(a) => export::run(&a),
        Command::Data(a) => data::run(&a),
    }
}
