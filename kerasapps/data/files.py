"""Examples read from files as the pipeline needs them, never all in memory.

A split of a ``--data`` source keeps its inputs as :class:`Examples`: the file paths and a
:class:`Reader` that turns one path into the recipe's raw input inside ``tf.data`` (an image decoded,
converted to the recipe's channels and resized to its input size by :mod:`kerasapps.data.images`, as the
export and ``predict`` do; a text file's UTF-8 text). It indexes like an array (``examples[mask]``,
``examples[3:10]``), so carving validation splits, smoke slices and a stage's selection work on it as on numpy
arrays, and the training pipeline reads the files of each seeded epoch order (:mod:`kerasapps.data.pipelines`).

``cache=memory`` decodes every file once into a numpy array (the split becomes an ordinary
in-memory one); ``cache=disk`` decodes every file once into a raw file under the cache directory
(``$KERASAPPS_CACHE_DIR``, default ``~/.cache/kerasapps``), read back without decoding: memory stays
flat as the data grows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.progress import NO_PROGRESS, Progress, progress
from kerasapps.data.images import decode_image

log = logging.getLogger("kerasapps")
CACHE_DIR_ENV = "KERASAPPS_CACHE_DIR"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEXT_SUFFIXES = (".txt",)


@dataclasses.dataclass(frozen=True)
class Reader:
    """How one file becomes a raw input: ``kind`` image (uint8 ``shape``) or text (a string)."""

    kind: str  # "image", "text" or "raw" (decoded before, cached as bytes)
    shape: tuple = ()  # image: (height, width) or (height, width, channels), as the recipe's input
    square: bool = False  # image: its central square is cropped before the resize (no stretching)

    def read(self, path):
        """The raw input of the file at ``path`` (a scalar string tensor), inside ``tf.data``."""
        import tensorflow as tf

        data = tf.io.read_file(path)
        if self.kind == "text":
            return data
        if self.kind == "raw":
            return tf.reshape(tf.io.decode_raw(data, tf.uint8), self.shape)
        return decode_image(data, self.shape, self.square)

    def describe(self) -> str:
        return {"text": "UTF-8 text", "image": f"uint8 images {'x'.join(map(str, self.shape))}",
                "raw": "decoded images"}[self.kind]


@dataclasses.dataclass(frozen=True, eq=False)
class Examples:
    """A split's inputs as file paths and the :class:`Reader` that reads them (see the module docstring)."""

    paths: np.ndarray  # str
    reader: Reader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> "Examples":
        return dataclasses.replace(self, paths=np.asarray(self.paths[index]).reshape(-1))

    def load(self) -> np.ndarray:
        """Every example read into memory (for what needs the arrays: a probe batch, full-batch L-BFGS)."""
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices(self.paths).map(self.reader.read,
                                                                     num_parallel_calls=tf.data.AUTOTUNE)
        values = [value.numpy() for value in dataset]
        if self.reader.kind == "text":
            return np.array([value.decode("utf-8") for value in values], dtype=object)
        return np.stack(values) if values else np.zeros((0, *self.reader.shape), np.uint8)


def materialize(x):
    """``x`` with its :class:`Examples` read into numpy arrays (nested tuples and dicts followed)."""
    if isinstance(x, Examples):
        return x.load()
    if isinstance(x, dict):
        return {key: materialize(value) for key, value in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(materialize(value) for value in x)
    return x


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "kerasapps")


def cached(examples: Examples, mode: str):
    """``examples`` as ``cache`` says: as they are (none), read into memory, or decoded once to disk."""
    if mode == "none" or examples.reader.kind == "text" and mode == "disk":
        return examples
    if mode == "memory":
        log.info("cache=memory: decoding %d files", len(examples))
        return examples.load()
    return _on_disk(examples)


def _on_disk(examples: Examples) -> Examples:
    """Each file decoded once into ``CACHE/decoded/KEY/NNNNNNN.raw`` (KEY: the files, their sizes and times,
    and the input shape), then read back as raw bytes."""
    import tensorflow as tf

    stats = [(str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in examples.paths]
    key = hashlib.sha256(repr((stats, examples.reader)).encode()).hexdigest()[:24]
    folder = cache_dir() / "decoded" / key
    targets = np.array([str(folder / f"{i:07d}.raw") for i in range(len(examples))])
    done = folder / "complete"
    if not done.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        log.info("cache=disk: decoding %d files once into %s", len(examples), folder)
        dataset = tf.data.Dataset.from_tensor_slices(examples.paths).map(examples.reader.read,
                                                                         num_parallel_calls=tf.data.AUTOTUNE)
        with progress("cache=disk: decoding", total=len(examples)) as bar:
            for target, value in zip(targets, dataset):  # written whole, then renamed: a kill leaves no half file
                Path(f"{target}.partial").write_bytes(value.numpy().tobytes())
                os.replace(f"{target}.partial", target)
                bar.advance()
        done.write_text(f"{len(examples)}\n")
    return Examples(targets, Reader("raw", examples.reader.shape))


def files_in(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """The files of ``folder`` (and below) with one of ``suffixes``, in sorted order; hidden files left out."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def check_images(paths: Sequence[Path], bad_files: str, bar: Progress = NO_PROGRESS) -> list[Path]:
    """``paths`` that TensorFlow decodes whole as PNG/JPEG/BMP/GIF images, with the decoder training uses
    (a truncated file fails here, not mid-epoch; Pillow reads some files TensorFlow refuses); the others are an
    error naming the first ones, or (``bad_files=skip``) left out with a one-line count. ``bar`` advances by
    one a file."""
    good, bad = _decodable(paths, bar)
    return _keep(good, bad, bad_files, "are not decodable PNG, JPEG, BMP or GIF images (or are truncated)")


def _decodable(paths: Sequence[Path], bar: Progress = NO_PROGRESS) -> tuple[list[Path], list[Path]]:
    """(the image files TensorFlow decodes whole, the others)."""
    import tensorflow as tf

    good, bad = [], []
    if paths:
        @tf.autograph.experimental.do_not_convert
        def decoded_shape(path):
            return tf.shape(decode_image(tf.io.read_file(path)))

        shapes = iter(tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
                      .map(decoded_shape, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
        for path in paths:  # a file that fails fails alone: the dataset goes on with the next one
            try:
                next(shapes)
                good.append(path)
            except tf.errors.OpError:
                bad.append(path)
            bar.advance()
    return good, bad


def check_texts(paths: Sequence[Path], bad_files: str, bar: Progress = NO_PROGRESS) -> list[Path]:
    """``paths`` that hold UTF-8 text; the others as in :func:`check_images`."""
    return _keep(*_utf8(paths, bar), bad_files, "are not UTF-8 text")


def _utf8(paths: Sequence[Path], bar: Progress = NO_PROGRESS) -> tuple[list[Path], list[Path]]:
    """(the files that hold UTF-8 text, the others)."""
    good, bad = [], []
    for path in paths:
        try:
            path.read_bytes().decode("utf-8")
            good.append(path)
        except (UnicodeDecodeError, OSError):
            bad.append(path)
        bar.advance()
    return good, bad


def unreadable(splits) -> str | None:
    """The first file of ``splits``' :class:`Examples` that cannot be read as its reader reads it (checked
    again, as before training: a file changed on disk since), or None."""
    for x, _ in (split for split in splits.values() if isinstance(split, tuple)):
        for examples in (x.values() if isinstance(x, dict) else [x]):
            if not isinstance(examples, Examples) or examples.reader.kind == "raw":
                continue
            sort = _decodable if examples.reader.kind == "image" else _utf8
            _, bad = sort([Path(p) for p in examples.paths])
            if bad:
                return str(bad[0])
    return None


def _keep(good: list, bad: list, bad_files: str, what: str) -> list:
    if bad:
        names = ", ".join(str(p) for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
        if bad_files != "skip":
            raise DataError(f"{len(bad)} file(s) {what}: {names}; remove them, or pass --set bad_files=skip")
        log.warning("skipping %d file(s) that %s: %s", len(bad), what, names)
    return good
