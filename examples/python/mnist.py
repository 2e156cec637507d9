"""MNIST from gradscope's IDX files with numpy (no torchvision, no download)."""

import gzip
import os
from pathlib import Path

import numpy as np


def mnist_dir() -> Path:
    """GRADSCOPE_MNIST_DIR, else ../shared/data/mnist beside the repository (as the Rust tests)."""
    here = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("GRADSCOPE_MNIST_DIR") or here.parent / "shared" / "data" / "mnist")


def idx(path: Path) -> np.ndarray:
    """One gzipped IDX file (magic, dims as big-endian u32, then u8 data)."""
    data = gzip.open(path, "rb").read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(split="train", rows=None):
    """Images as float32 in [0, 1], shape (N, 1, 28, 28), and int64 labels."""
    prefix = "train" if split == "train" else "t10k"
    d = mnist_dir()
    x = idx(d / f"{prefix}-images-idx3-ubyte.gz")[:rows].astype(np.float32) / 255.0
    y = idx(d / f"{prefix}-labels-idx1-ubyte.gz")[:rows].astype(np.int64)
    return x[:, None, :, :], y
