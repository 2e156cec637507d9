//! `gradscope report`: run folders in, `report.html` and the figures out; also what `train` and
//! `demo` call when they finish.

use super::Status;
use super::args::ReportArgs;
use gradscope::error::Error;
use gradscope::io;
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

/// Quotes an argument for a POSIX shell when it needs it (shlex). An argument holding a NUL
/// byte, which no shell can pass, is kept as it is.
pub fn quote(a: &str) -> String {
    shlex::try_quote(a).map_or_else(|_| a.to_string(), |q| q.into_owned())
}

/// Saves this process's command line in a run folder, for reports made later.
pub fn save_command(dir: &Path) -> gradscope::Result<()> {
    io::write_atomic(&dir.join(io::COMMAND_FILE), format!("{}\n", command_line()).as_bytes())
}

/// Writes the report of `runs` into `out`; returns the page's path.
pub fn make(runs: &[PathBuf], out: &Path) -> gradscope::Result<PathBuf> {
    gradscope::run::write_report(runs, out, command_line())
}

/// Where the report of several runs goes without `--out`: their common parent folder.
fn default_out(runs: &[PathBuf]) -> gradscope::Result<PathBuf> {
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
    println!("report: {}", html.display());
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("--depth"), "--depth");
        assert_eq!(quote("csv:data/x.csv"), "csv:data/x.csv");
        // what a shell splits back into the same words
        let words = ["my run", "it's", "", "$HOME", "a\"b", "x;rm"];
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        assert_ne!(line, words.join(" "));
        assert_eq!(shlex::split(&line).unwrap(), words);
    }

    #[test]
    fn several_runs_report_into_their_common_folder() {
        let runs = [PathBuf::from("out/demo/a"), PathBuf::from("out/demo/b")];
        assert_eq!(default_out(&runs).unwrap(), PathBuf::from("out/demo"));
        let apart = [PathBuf::from("x/a"), PathBuf::from("y/b")];
        assert!(default_out(&apart).unwrap_err().to_string().contains("--out DIR"));
    }
}
