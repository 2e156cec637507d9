//! `gradscope report`: run folders in, `report.html` and the figures out; also what `train` and
//! `demo` call when they finish.

use super::Status;
use super::args::ReportArgs;
use crate::error::Error;
use crate::io;
use crate::report::{self, Report};
use std::path::{Path, PathBuf};

/// The command line of this process, shell-quoted, with the program's path cut to its name.
pub fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(
            |(i, a)| {
                if i == 0 { Path::new(&a).file_name().map_or(a.clone(), |n| n.to_string_lossy().into()) } else { a }
            },
        )
        .map(|a| quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes an argument for a POSIX shell when it needs it.
pub fn quote(a: &str) -> String {
    let plain = !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain { a.to_string() } else { format!("'{}'", a.replace('\'', "'\\''")) }
}

/// Saves this process's command line in a run folder, for reports made later.
pub fn save_command(dir: &Path) -> crate::Result<()> {
    io::write_atomic(&dir.join(io::COMMAND_FILE), format!("{}\n", command_line()).as_bytes())
}

/// Writes the report of `runs` into `out`; returns the page's path.
pub fn make(runs: &[PathBuf], out: &Path) -> crate::Result<PathBuf> {
    let report = Report::load(runs, command_line())?;
    Ok(report::write(&report, out)?.html)
}

/// Where the report of several runs goes without `--out`: their common parent folder.
fn default_out(runs: &[PathBuf]) -> crate::Result<PathBuf> {
    if let [one] = runs {
        return Ok(one.clone());
    }
    let parent = |p: &PathBuf| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let first = parent(&runs[0]);
    if runs.iter().all(|r| parent(r) == first) {
        return Ok(if first.as_os_str().is_empty() { PathBuf::from(".") } else { first });
    }
    Err(Error::invalid(
        "--out",
        "(none)",
        "the runs are in different folders; say where the report goes with --out DIR",
    ))
}

/// Runs `gradscope report`.
pub fn run(a: &ReportArgs) -> anyhow::Result<Status> {
    let out = match &a.out {
        Some(o) => o.clone(),
        None => default_out(&a.runs)?,
    };
    let html = make(&a.runs, &out)?;
    crate::outln!("report: {}", html.display());
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("--depth"), "--depth");
        assert_eq!(quote("csv:data/x.csv"), "csv:data/x.csv");
        assert_eq!(quote("my run"), "'my run'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn several_runs_report_into_their_common_folder() {
        let runs = [PathBuf::from("out/demo/a"), PathBuf::from("out/demo/b")];
        assert_eq!(default_out(&runs).unwrap(), PathBuf::from("out/demo"));
        let apart = [PathBuf::from("x/a"), PathBuf::from("y/b")];
        assert!(default_out(&apart).unwrap_err().to_string().contains("--out DIR"));
    }
}
