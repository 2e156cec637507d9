//! What the integration tests share: the binary under test and where the data lives.
// Each test crate compiles this module and uses part of it.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::PathBuf;

/// The `gradscope` binary built by cargo for these tests.
pub fn gradscope() -> Command {
    Command::cargo_bin("gradscope").expect("cargo builds the gradscope binary for integration tests")
}

/// Where the shared copy of MNIST lives: `GRADSCOPE_MNIST_DIR`, else `../shared/data/mnist`
/// from the repository root (no test downloads anything).
pub fn mnist_dir() -> PathBuf {
    std::env::var_os("GRADSCOPE_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist"))
}
