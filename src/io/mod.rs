//! Files gradscope writes and reads: atomic writes and safetensors weights.

pub mod checkpoint;
pub mod data_info;
pub mod recurrent;
pub mod tensors;
pub mod weights;

pub use checkpoint::CHECKPOINT_FILE;

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// File names inside a run folder.
pub const CONFIG_FILE: &str = "config.toml";
/// See [`CONFIG_FILE`].
pub const METRICS_FILE: &str = "metrics.jsonl";
/// See [`CONFIG_FILE`].
pub const SUMMARY_FILE: &str = "summary.json";
/// See [`CONFIG_FILE`].
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// The command line that made the run (one line, shell-quoted).
pub const COMMAND_FILE: &str = "command.txt";
/// What the run's data was ([`data_info::DataInfo`]: shape, class names, standardised or not, q⁰).
pub const DATA_FILE: &str = "data.json";
/// The standardisation fitted on the run's training split (`data::standardize`).
pub const STANDARDIZE_FILE: &str = "standardize.safetensors";

/// The name of an atomic write's temporary file starts with this…
pub const TEMP_PREFIX: &str = ".gradscope-";
/// …and ends with this.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically: to a temporary file in the same folder, flushed and
/// fsynced, then renamed over `path`. A reader sees the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let err = |err| Error::Io { action: "cannot write", path: path.into(), err };
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    // as File::create makes files (0o666 less the umask), not tempfile's private 0o600
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    // the rename itself is made durable by syncing the folder (not possible on every platform)
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `dir` and its parents, with an error naming it.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|err| Error::Io { action: "cannot create folder", path: dir.into(), err })
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("gradscope internal error: records serialise");
    text.push('\n');
    write_atomic(path, text.as_bytes())
}
