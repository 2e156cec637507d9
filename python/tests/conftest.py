"""Shared fixtures: the gradscope binary the CLI-side checks run (GRADSCOPE_BIN, else the
repository's target/release/gradscope) and the MNIST folder (GRADSCOPE_MNIST_DIR, else
../shared/data/mnist beside the repository)."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gradscope_bin():
    path = os.environ.get("GRADSCOPE_BIN") or str(ROOT / "target" / "release" / "gradscope")
    if not Path(path).is_file():
        path = shutil.which("gradscope")
    if not path:
        pytest.fail("no gradscope binary: run `cargo build --release` or set GRADSCOPE_BIN")
    return path


@pytest.fixture(scope="session")
def mnist_dir():
    d = Path(os.environ.get("GRADSCOPE_MNIST_DIR") or ROOT.parent / "shared" / "data" / "mnist")
    if not (d / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"MNIST not found in {d}: set GRADSCOPE_MNIST_DIR")
    return d
