//! The command-line interface: flags in, a validated config, then the library does the work.
//!
//! Exit codes: 0 success; 1 the run finished but a check failed (it diverged);
//! 2 an error (bad input, unreadable file), with nothing half-written.

pub mod args;
pub mod bench;
pub mod demo;
pub mod output;
pub mod probe;
pub mod report;
pub mod sweep;
pub mod theory;
pub mod train;

use args::{Cli, Command};
use clap::{CommandFactory, FromArgMatches};

/// How a command ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything as expected: exit 0.
    Ok,
    /// It ran, but a run diverged or a check failed: exit 1.
    CheckFailed,
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
    }
}
