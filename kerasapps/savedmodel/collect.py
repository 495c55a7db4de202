"""What a user hands ``kerasapps predict``, made into the inputs a signature reads, predicted in chunks.

- A folder is the files in it that the model can read, recursively, sorted, hidden ones skipped: images
  (:data:`kerasapps.data.files.IMAGE_SUFFIXES`) and ``.npy`` arrays for an image input, ``.txt`` files for a
  text input, ``.csv``/``.jsonl`` tables for a model of named columns. A folder with none is a one-line error.
- ``--text "..."`` (repeatable) is one example each, for a text input, shown as ``text 1``, ``text 2``, ...
- A table (``.csv``/``.jsonl``) given to an image or text model is refused in one line: predict reads files of
  images or texts for those, not a table of their paths or texts.

:func:`predict_in_chunks` reads and predicts ``CHUNK`` inputs at a time (a folder of 10,000 photos is never one
array), advancing a progress bar per chunk on a terminal. It takes the predicting as a function of a list of
input files, so a local model and a server (``--url``) are driven the same way. Standard library and NumPy only.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from kerasapps.core.errors import UsageError
from kerasapps.core.progress import progress
from kerasapps.data.files import IMAGE_SUFFIXES, TEXT_SUFFIXES, files_in
from kerasapps.data.tables import SUFFIXES as TABLE_SUFFIXES
from kerasapps.savedmodel.inputs import InputSpec

CHUNK = 256  # inputs (files, or texts) read and predicted at a time

Specs = Callable[[], Mapping[str, InputSpec]]  # the signature's inputs, asked for only where needed


def input_kind(inputs: Mapping[str, InputSpec]) -> str:
    """"text" (one string input), "image" (one numeric input) or "table" (named columns)."""
    if len(inputs) == 1:
        (spec,) = inputs.values()
        return "text" if spec.dtype == "string" else "image"
    return "table"


READABLE = {"image": (*IMAGE_SUFFIXES, ".npy"), "text": TEXT_SUFFIXES, "table": TABLE_SUFFIXES}
WHAT = {"image": "images or .npy arrays", "text": "text files", "table": "tables"}


def files_in_folder(folder: Path, suffixes: Sequence[str]) -> list[str]:
    """The files under ``folder`` with one of ``suffixes`` (any case), recursively, sorted, hidden ones (and
    those in hidden folders) skipped: the data layer's :func:`kerasapps.data.files.files_in`, as paths."""
    return [str(path) for path in files_in(Path(folder), suffixes)]


def expand(paths: Sequence[str], specs: Specs) -> list[str]:
    """``paths`` with each folder replaced by the files in it that the model reads (:func:`files_in_folder`);
    a table given to an image or text model, or a folder with nothing readable, is a one-line error."""
    if not any(Path(p).is_dir() or Path(p).suffix.lower() in TABLE_SUFFIXES for p in paths):
        return list(paths)  # files only: the signature need not be asked
    kind = input_kind(specs())
    out = []
    for path in paths:
        if Path(path).is_dir():
            found = files_in_folder(Path(path), READABLE[kind])
            if not found:
                raise UsageError(f"{path}: no {WHAT[kind]} ({', '.join(READABLE[kind])}) in this folder or "
                                 "its subfolders")
            out += found
        elif kind != "table" and Path(path).suffix.lower() in TABLE_SUFFIXES:
            raise UsageError(f"{path}: a table; this {kind} model reads {WHAT[kind]} ({', '.join(READABLE[kind])}) "
                             "or folders of them, not a table of their paths or texts")
        else:
            out.append(path)
    return out


def check_texts(texts: Sequence[str], specs: Specs) -> None:
    """``--text`` is for a model of one text input: a one-line error for any other."""
    inputs = specs()
    if texts and input_kind(inputs) != "text":
        raise UsageError("--text is for text models; this one takes "
                         f"{', '.join(f'{n} {s.describe()}' for n, s in inputs.items())}")


@contextlib.contextmanager
def text_files(texts: Sequence[str]) -> Iterator[dict[str, str]]:
    """Each text written to a temporary UTF-8 file while the block runs: {file: "text N"}."""
    with tempfile.TemporaryDirectory(prefix="kerasapps-text-") as folder:
        names = {}
        for i, text in enumerate(texts, 1):
            path = Path(folder) / f"text-{i}.txt"
            path.write_text(text, encoding="utf-8")
            names[str(path)] = f"text {i}"
        yield names


def predict_in_chunks(run: Callable[[list[str]], list[dict]], paths: Sequence[str], *, texts: Sequence[str] = (),
                      chunk: int = CHUNK) -> list[dict]:
    """``run`` (input files -> one row per example) on ``paths`` then ``texts``, ``chunk`` inputs at a time with
    a progress bar on a terminal; the rows in order, a text's ``input`` being ``text N``."""
    with text_files(texts) as names:
        todo = list(paths) + list(names)
        if not todo:
            return run([])  # the reader's own one-line error
        rows: list[dict] = []
        with progress(f"predicting {len(todo)} input{'s' * (len(todo) != 1)}", total=len(todo)) as bar:
            for start in range(0, len(todo), chunk):
                part = todo[start:start + chunk]
                rows += run(part)
                bar.advance(len(part))
    for row in rows:
        row["input"] = names.get(row["input"], row["input"])
    return rows
