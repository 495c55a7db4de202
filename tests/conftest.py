"""Shared fixtures: tiny generated data (tests pass without ../shared/data) and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def make_tiny_mnist(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """A learnable MNIST stand-in: each digit lights its own 8x5 block on a noisy background."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.tile(np.arange(10, dtype=np.uint8), n // 10 + 1)[:n]
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, digit in enumerate(y):
            row, col = divmod(int(digit), 5)
            x[i, 4 + row * 12: 12 + row * 12, 1 + col * 5: 6 + col * 5] = 255
        return x, y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    path = folder / "mnist" / "mnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    make_tiny_mnist(folder)
    return folder


def _real_data_dir() -> Path | None:
    candidates = [os.environ.get("KERASAPPS_DATA_DIR"), str(REPO.parent / "shared" / "data")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist" / "mnist.npz").is_file():
            return Path(candidate).resolve()
    return None


REAL_DATA_DIR = _real_data_dir()  # resolved at import, before tests change directory


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    path = REAL_DATA_DIR
    if path is None:
        pytest.skip("real data not available: set KERASAPPS_DATA_DIR to a folder like ../shared/data")
    return path


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Each test runs in its own working directory with no data directory set."""
    monkeypatch.delenv("KERASAPPS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
