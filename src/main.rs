//! The `gradscope` binary: parses flags, runs a command, maps the outcome to an exit code.

mod cli;

use cli::Status;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::CheckFailed) => ExitCode::from(1),
        Ok(Status::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
