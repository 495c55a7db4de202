"""Shared fixtures: tiny generated data (tests pass without ../shared/data) and the real data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from user_data import photo_folder, sklearn_tables, write_table  # noqa: F401 (fixtures use them)

REPO = Path(__file__).resolve().parents[1]

# Modules whose tests train whole recipes (every registered recipe end to end, transfer learning, own-data
# sources, multi-worker runs, kill-and-resume, real-data exports): all their tests are marked slow, so
# `pytest -m "not slow and not realdata"` is the fast subset (see the README's "Run the tests").
SLOW_MODULES = {
    "tests/recipes/test_recipes.py", "tests/recipes/test_transfer.py", "tests/recipes/test_auxiliary_heads.py",
    "tests/recipes/test_captioning.py", "tests/data/test_own_data.py", "tests/training/test_distribute.py",
    "tests/training/test_resume.py", "tests/savedmodel/test_predict.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(item.fspath).resolve().relative_to(REPO).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


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


def make_tiny_cifar10(folder: Path, n_train: int = 400, n_test: int = 100, seed: int = 0) -> Path:
    """cifar10_subset/cifar10_subset.npz with learnable colour-coded classes."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = (np.arange(n) % 10).astype(np.uint8)
        x = rng.integers(0, 80, size=(n, 32, 32, 3)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 4 + 2 * label: 8 + 2 * label, :, label % 3] = 250
        return x, y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    path = folder / "cifar10_subset" / "cifar10_subset.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def make_tiny_imdb(folder: Path, n: int = 200, seed: int = 0) -> Path:
    """imdb/imdb_{train,test}.jsonl.gz in the shared layout, with an obvious sentiment signal."""
    import gzip
    import json

    rng = np.random.default_rng(seed)
    good, bad = ["great", "wonderful", "superb", "loved"], ["awful", "boring", "terrible", "hated"]
    filler = ["the", "movie", "plot", "actor", "scene", "was", "and", "a", "film", "story"]
    (folder / "imdb").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        with gzip.open(folder / "imdb" / f"imdb_{split}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for i in range(n):
                label = i % 2
                words = list(rng.choice(filler, 12)) + list(rng.choice(good if label else bad, 3))
                rng.shuffle(words)
                handle.write(json.dumps({"id": f"{i}_{8 if label else 2}", "label": label,
                                         "rating": 8 if label else 2, "text": " ".join(words)}) + "\n")
    return folder / "imdb"


def make_tiny_shakespeare(folder: Path) -> Path:
    path = folder / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    verse = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo!\n\n"
    path.write_text(verse * 60, encoding="utf-8")
    return path


def make_tiny_flickr8k(folder: Path, n: int = 20, seed: int = 0) -> Path:
    """flickr8k_subset/ in the shared layout: n 64x64 images (12 train, 4 dev, 4 test when n=20), 5 captions each.

    Each image is one solid colour with noise; its captions name that colour. The test
    images' captions carry the word "zebra", which no training caption has.
    """
    import gzip
    import json

    rng = np.random.default_rng(seed)
    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
    names = list(colours)
    splits = (["train"] * 12 + ["dev"] * 4 + ["test"] * 4 + ["none"] * n)[:n]
    images = np.zeros((n, 64, 64, 3), np.uint8)
    entries = []
    for i in range(n):
        colour = names[i % len(names)]
        images[i] = np.clip(np.array(colours[colour]) + rng.integers(-20, 20, (64, 64, 3)), 0, 255)
        extra = " zebra" if splits[i] == "test" else ""
        captions = [f"A {colour} square{extra} .", f"The {colour} picture{extra} .", f"A {colour} image ,{extra}",
                    f"Something {colour} .", f"A plain {colour} square ."]
        entries.append({"index": i, "filename": f"{i:04d}_tiny.jpg", "flickr8k_split": splits[i],
                        "captions": captions})
    folder = folder / "flickr8k_subset"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "images_64.npz", images=images,
                        filenames=np.array([e["filename"] for e in entries]))
    (folder / "captions.json").write_text(json.dumps({"images": entries}), encoding="utf-8")
    with gzip.open(folder / "all_8091_captions.json.gz", "wt", encoding="utf-8") as handle:
        json.dump({"images": [{k: v for k, v in e.items() if k != "index"} for e in entries]}, handle)
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data directory in the layout of ../shared/data, with tiny generated data sets."""
    folder = tmp_path_factory.mktemp("data")
    make_tiny_mnist(folder)
    make_tiny_cifar10(folder)
    make_tiny_imdb(folder)
    make_tiny_shakespeare(folder)
    make_tiny_flickr8k(folder)
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


@pytest.fixture(scope="session")
def recipe_data_dir(tiny_data_dir) -> Path:
    """The real data sets where they are (CI), else the tiny generated ones: the every-recipe tests use them."""
    return REAL_DATA_DIR or tiny_data_dir


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Each test runs in its own working directory with no data directory set."""
    monkeypatch.delenv("KERASAPPS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def real_tables(tmp_path_factory) -> dict[str, Path]:
    """Real tables as a user has them: scikit-learn's wine (classification) and diabetes (regression) CSVs."""
    wine, diabetes = sklearn_tables(tmp_path_factory.mktemp("tables"))
    return {"wine": wine, "diabetes": diabetes}
