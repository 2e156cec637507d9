//! What the integration tests share: the binary under test and where the data lives.
// Each test crate compiles this module and uses part of it.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::PathBuf;

/// The `gradscope` binary built by cargo for these tests.
pub fn gradscope() -> Command {
    Command::cargo_bin("gradscope").expect("cargo builds the gradscope binary for integration tests")
}

/// The one rule by which tests (and docs/data.md) find MNIST: `$GRADSCOPE_MNIST_DIR` if set,
/// else `../shared/data/mnist` beside the repository, else the cache folder that
/// `gradscope data mnist` fills (`$GRADSCOPE_DATA/mnist` or the platform's cache folder). No
/// test downloads anything.
pub fn mnist_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRADSCOPE_MNIST_DIR") {
        return dir.into();
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if shared.is_dir() {
        return shared;
    }
    gradscope::data::download::cache_dir("mnist").unwrap_or(shared)
}

/// What to say when MNIST is not where [`mnist_dir`] looked.
pub const MNIST_HINT: &str = "MNIST not found: set GRADSCOPE_MNIST_DIR=DIR, put it in ../shared/data/mnist, \
                              or run `gradscope data mnist` (docs/data.md)";
