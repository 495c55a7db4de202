"""Tables: ``.csv`` (a header row) or ``.jsonl`` (one JSON object a line), read into columns.

A table is one file, or ``train.EXT`` with ``validation.EXT`` and ``test.EXT`` beside it for splits of
one's own; without a test (or validation) file, those splits are carved from the rows by a seeded
permutation (``test_split``, ``validation_split``). An image or text classifier reads the image
paths (``image_column``, relative to the table) or texts (``text_column``) and the labels
(``label_column``): :func:`read_labelled_table`. A tabular recipe takes the columns themselves
(:func:`read_table`, :func:`split_files`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.progress import progress
from kerasapps.core.recipe import Splits
from kerasapps.data.files import Examples, Reader, check_images
from kerasapps.data.splits import class_names, split_off

SUFFIXES = (".csv", ".jsonl")
# cells that stand for a missing value in a numeric column (compared stripped and lower-cased; JSON null too)
MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "-")


def is_missing(value) -> bool:
    return value is None or isinstance(value, str) and value.strip().lower() in MISSING


def to_number(value) -> float | None:
    """A cell's finite number, or None (a word, a boolean, inf or nan)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def number_or_nan(value) -> float | None:
    """A cell of a numeric column: its number, NaN where it is a missing-value marker, None where it is neither."""
    return float("nan") if is_missing(value) else to_number(value)


def input_name(column_name: str) -> str:
    """The model input (and export input) a table column is fed through: its name with characters Keras and
    TF Serving refuse in names (other than letters, digits, ``_``, ``.``, ``-``) replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", column_name).lstrip(".-") or "column"


def read_table(path: Path) -> dict[str, list]:
    """The columns of a CSV or JSON Lines file, in file order; one-line errors for what does not parse."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--data {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"--data {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows = _csv_rows(path, text) if path.suffix.lower() == ".csv" else _jsonl_rows(path, text)
    if not rows:
        raise DataError(f"--data {path} holds no rows")
    names = list(rows[0])
    for number, row in enumerate(rows, 2 if path.suffix.lower() == ".csv" else 1):
        if list(row) != names:
            raise DataError(f"--data {path}, row {number}: columns {sorted(row)} differ from the first row's {names}")
    return {name: [row[name] for row in rows] for name in names}


def _csv_rows(path: Path, text: str) -> list[dict]:
    # csv reads the records itself: a quoted field may hold line breaks, and str.splitlines would also break at
    # U+0085, U+2028 and the other separators that real texts hold
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DataError(f"--data {path} has no header row")
    rows = []
    for row in reader:
        number = reader.line_num
        if None in row or any(value is None for value in row.values()):
            raise DataError(f"--data {path}, line {number}: {len(row)} fields where the header has "
                            f"{len(reader.fieldnames)}")
        rows.append(row)
    return rows


def _jsonl_rows(path: Path, text: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.split("\n"), 1):  # JSON Lines: records end at \n only (not U+0085, ...)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"--data {path}, line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise DataError(f"--data {path}, line {number}: a JSON object is needed, got {type(row).__name__}")
        rows.append(row)
    return rows


def split_files(path: Path) -> dict[str, Path]:
    """``{"train": path}``, or, for ``train.EXT``, the ``validation.EXT`` and ``test.EXT`` beside it too."""
    path = Path(path)
    files = {"train": path}
    if path.stem == "train":
        for split in ("validation", "test"):
            sibling = path.with_name(f"{split}{path.suffix}")
            if sibling.is_file():
                files[split] = sibling
    return files


def column(table: dict[str, list], name: str, path: Path, role: str) -> list:
    if name not in table:
        raise DataError(f"--data {path} has no {role} column {name!r} (its columns: {', '.join(table)}); set "
                        f"--set {role}_column=NAME")
    return table[name]


def read_labelled_table(path: Path, reader: Reader, hp) -> Splits:
    """An image or text classifier's splits from a table of image paths or texts and labels."""
    path = Path(path)
    files = split_files(path)
    tables = {split: read_table(file) for split, file in files.items()}
    labels = {split: [str(v) for v in column(table, hp.label_column, files[split], "label")]
              for split, table in tables.items()}
    names = class_names(labels, path, f"value(s) in the label column {hp.label_column!r}")
    splits = {}
    for split, table in tables.items():
        keep = np.arange(len(labels[split]))
        if reader.kind == "image":
            given = [Path(p) for p in column(table, hp.image_column, files[split], "image")]
            paths = [p if p.is_absolute() else files[split].parent / p for p in given]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise DataError(f"--data {files[split]}: {len(missing)} image file(s) not found: "
                                f"{', '.join(missing[:3])}")
            with progress(f"checking {len(paths)} images of {files[split]}", total=len(paths)) as bar:
                good = set(map(str, check_images(paths, hp.bad_files, bar)))
            keep = np.array([i for i, p in enumerate(paths) if str(p) in good], np.int64)
            x = Examples(np.array([str(paths[i]) for i in keep]), reader)
        else:
            x = np.array([str(v) for v in column(table, hp.text_column, files[split], "text")], dtype=object)
        y = np.array([names.index(labels[split][i]) for i in keep], np.int64)
        splits[split] = (x, y)
    result = Splits(splits, meta={"class_names": names, "source": str(path)})
    if "test" not in result:
        result["train"], result["test"] = split_off(result["train"], hp.test_split, hp.seed, salt=104729)
    return result
