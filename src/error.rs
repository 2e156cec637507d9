//! One error type for the library; every message names the bad value and how to fix it.

use std::path::PathBuf;

/// Everything that can go wrong before or around training (bad input, I/O).
///
/// A diverging run is not an error: it is a finding, recorded in the run's summary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid {key} = {value}: {hint}")]
    Invalid {
        /// The config key or flag.
        key: String,
        /// The offending value as the user wrote it.
        value: String,
        /// What is allowed, or how to fix it.
        hint: String,
    },
    /// A name (activation, init, loss, ...) that gradscope does not know.
    #[error("unknown {what} '{given}'{}; valid: {}", suggestion_text(.suggestion), .valid.join(", "))]
    UnknownName {
        /// What kind of name ("activation", "init", ...).
        what: &'static str,
        /// The name given.
        given: String,
        /// The closest valid name, if any is close.
        suggestion: Option<String>,
        /// Every valid name.
        valid: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("{action} {}: {err}", .path.display())]
    Io {
        /// "cannot read", "cannot write", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        err: std::io::Error,
    },
    /// A data file is malformed.
    #[error("bad data in {}: {msg}", .path.display())]
    Data {
        /// The file (or data spec).
        path: PathBuf,
        /// What is wrong, and where.
        msg: String,
    },
    /// A weights file does not fit the requested model or is malformed.
    #[error("bad weights in {}: {msg}", .path.display())]
    Weights {
        /// The safetensors file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A folder given to `report` is not a readable run folder.
    #[error("cannot report on {}: {msg}", .path.display())]
    RunFolder {
        /// The folder.
        path: PathBuf,
        /// What is missing or malformed, and how to fix it.
        msg: String,
    },
    /// A figure could not be drawn (a bug: drawing into memory does not fail otherwise).
    #[error("gradscope internal error: cannot draw figure {figure}: {msg}")]
    Render {
        /// The figure's name.
        figure: String,
        /// What plotters said.
        msg: String,
    },
    /// An output folder that holds a run gradscope may not touch, or a run folder that cannot be
    /// continued.
    #[error("{}: {msg}", .path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What is there, and what to do.
        msg: String,
    },
    /// A checkpoint cannot be read or does not belong to the run.
    #[error("bad checkpoint {}: {msg}; start the run afresh with --overwrite", .path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A download failed or delivered other bytes than the published ones.
    #[error("cannot download {file}: {msg}")]
    Download {
        /// The file name.
        file: String,
        /// What happened, and what to do.
        msg: String,
    },
    /// A run would need more memory than it may use.
    #[error("{msg}")]
    Resources {
        /// The estimate, the limit, and what to change.
        msg: String,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    Shape {
        /// The operation.
        op: String,
        /// The expected shape.
        expected: String,
        /// The shape found.
        got: String,
    },
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    }
}

/// `Result` with gradscope's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An out-of-range or inconsistent value.
    pub fn invalid(key: impl Into<String>, value: impl ToString, hint: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), value: value.to_string(), hint: hint.into() }
    }

    /// An unknown name among `valid`, with the closest valid one suggested.
    pub fn unknown_name(what: &'static str, given: &str, valid: &[&str]) -> Self {
        Self::UnknownName {
            what,
            given: given.to_string(),
            suggestion: closest(given, valid).map(str::to_string),
            valid: valid.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The valid name closest to `given` (Jaro–Winkler similarity above 0.7), if any.
pub fn closest<'a>(given: &str, valid: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (strsim::jaro_winkler(&given, v), *v))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v)
}

/// A closed set of names: a [`clap::ValueEnum`], whose derive spells them (snake case, as
/// serde spells them in config files), so that flags, configs and messages share one table.
pub trait Named: clap::ValueEnum {
    /// This value's name.
    fn name(&self) -> String {
        self.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
    }

    /// Every name, in declaration order (aliases left out).
    fn names() -> Vec<String> {
        Self::value_variants().iter().map(Self::name).collect()
    }

    /// Parses a name (or an alias); an unknown one names `what`, the closest valid name and
    /// every valid one.
    fn parse(what: &'static str, given: &str) -> Result<Self> {
        Self::from_str(given, false).map_err(|_| {
            let names = Self::names();
            Error::unknown_name(what, given, &names.iter().map(String::as_str).collect::<Vec<_>>())
        })
    }
}

impl<E: clap::ValueEnum> Named for E {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_suggest_the_closest() {
        let e = Error::unknown_name("activation", "sigmod", &["sigmoid", "tanh", "relu"]);
        let msg = e.to_string();
        assert!(msg.contains("did you mean 'sigmoid'"), "{msg}");
        assert!(msg.contains("valid: sigmoid, tanh, relu"), "{msg}");
        let e = Error::unknown_name("activation", "zzzzzz", &["sigmoid", "tanh"]);
        assert!(!e.to_string().contains("did you mean"));
    }
}
