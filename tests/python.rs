//! The Python package (`python/`): its pytest suite, run with the Python of the venv named by
//! `GRADSCOPE_PYTHON_VENV` (a venv where `pip install ./python`, torch, pytest and tensorboard
//! are installed; `.ci/run` makes one). Without it the test prints that it was skipped and
//! passes, so that `cargo test --release` needs no Python; with `CI=true` it must be set.
//! Every file of the package is still checked here: the crate is its own workspace, never built
//! by the root's `cargo test`, so that test and clippy at the root never compile pyo3.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn python_package_tests() {
    let Some(venv) = std::env::var_os("GRADSCOPE_PYTHON_VENV") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but GRADSCOPE_PYTHON_VENV is not set: .ci/run sets it to the venv it builds"
        );
        eprintln!(
            "SKIPPED: the Python package's tests (python/tests) did not run: set GRADSCOPE_PYTHON_VENV to a venv \
             with `pip install ./python`, torch, pytest and tensorboard (docs/python.md)"
        );
        return;
    };
    let python = Path::new(&venv).join("bin").join("python");
    assert!(python.is_file(), "GRADSCOPE_PYTHON_VENV: no {}", python.display());
    let bin = assert_cmd::cargo::cargo_bin("gradscope");
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "python/tests"])
        .current_dir(root())
        .env("GRADSCOPE_BIN", &bin)
        .env("GRADSCOPE_MNIST_DIR", common::mnist_dir())
        .status()
        .expect("runs pytest");
    assert!(status.success(), "the Python package's tests failed (python/tests)");
}

/// The package's crate stays out of the root's build: its own workspace, a cdylib named as the
/// module maturin installs (`gradscope._core`).
#[test]
fn python_crate_is_its_own_workspace() {
    let manifest = std::fs::read_to_string(root().join("python/Cargo.toml")).unwrap();
    assert!(manifest.contains("\n[workspace]"), "python/Cargo.toml must declare its own [workspace]");
    assert!(manifest.contains("name = \"_core\"") && manifest.contains("cdylib"));
    let pyproject = std::fs::read_to_string(root().join("python/pyproject.toml")).unwrap();
    assert!(pyproject.contains("module-name = \"gradscope._core\""));
    let root_manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(!root_manifest.contains("[workspace]") && !root_manifest.contains("pyo3"));
}
