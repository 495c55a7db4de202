"""User-style data built from real data sets, for the tests that train on them: tables as CSV files, and the
Flickr8k photos as an imbalanced photo folder; and a real server on 127.0.0.1 for the tests that call one.
Imported by name (``from user_data import ...``), not through ``conftest``: with a second conftest under
``tests/serving``, ``conftest`` names whichever was collected last."""

from __future__ import annotations

import contextlib
import csv
import socket
import threading
import time
from pathlib import Path

import numpy as np


def write_table(path: Path, columns: list[str], rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def sklearn_tables(folder: Path) -> tuple[Path, Path]:
    """scikit-learn's wine (178 wines, 3 cultivars) and diabetes (442 patients) tables, as CSV."""
    from sklearn.datasets import load_diabetes, load_wine

    wine, diabetes = load_wine(), load_diabetes()
    wine_rows = [[*x, wine.target_names[y]] for x, y in zip(wine.data, wine.target)]
    diabetes_rows = [[*x, y] for x, y in zip(diabetes.data, diabetes.target)]
    return (write_table(folder / "wine.csv", [*wine.feature_names, "label"], wine_rows),
            write_table(folder / "diabetes.csv", [*diabetes.feature_names, "label"], diabetes_rows))


PHOTO_WORDS = {"dog": {"dog", "dogs", "puppy"},
               "people": set("man men woman women boy boys girl girls person people child children kid kids player "
                             "lady guy crowd baby".split())}
FLICKR_SPLITS = {"train": "train", "dev": "validation", "test": "test", "none": "train"}


def photo_folder(data_dir: Path, root: Path, odd: bool = False) -> Path:
    """The real Flickr8k photos as an imbalanced folder a user has: ``dog/`` where a caption says dog/dogs/puppy,
    else ``people/`` where one names a person (about one dog in four), in Flickr8k's own train/dev/test split.
    ``odd``: saved as JPEG files of several sizes and shapes (some wider than tall, some letterboxed), so the
    pipeline's decoding, crop and resize all act; else the 64x64 PNG files."""
    import json
    import re

    from PIL import Image

    source = data_dir / "flickr8k_subset"
    images = np.load(source / "images_64.npz")["images"]
    for n, entry in enumerate(json.loads((source / "captions.json").read_text())["images"]):
        words = set(re.findall(r"[a-z]+", " ".join(entry["captions"]).lower()))
        label = next((name for name, wanted in PHOTO_WORDS.items() if words & wanted), None)
        if label is None:
            continue
        folder = root / FLICKR_SPLITS[entry["flickr8k_split"]] / label
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(images[entry["index"]])
        if not odd:
            picture.save(folder / f"{entry['index']:04d}.png")
            continue
        if n % 3 == 1:
            picture = picture.resize((83, 61))
        elif n % 3 == 2:
            picture = Image.fromarray(np.pad(images[entry["index"]], ((0, 0), (9, 9), (0, 0))))
        picture.save(folder / f"{entry['index']:04d}.jpg", quality=90)
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def live_server(app, **uvicorn_options):
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yields ``(base_url, uvicorn.Server)``."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", **uvicorn_options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start within 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
