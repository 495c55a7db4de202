"""``kerasapps predict --out FILE.csv|.jsonl``: one row per input, written atomically (a temporary file beside it,
then renamed), so a half-written file never stands where the predictions should be.

A row is ``input`` (the file; ``FILE.csv:ROW`` for a table's row, ROW counted from 1 as the data rows are;
``text N`` for ``--text``), then for a classifier ``class`` (its name), ``probability`` (of that class) and
``top_k`` (the ``k`` most probable classes as ``name:p`` pairs, separated by spaces), else ``prediction`` (a
regression's value; a model of several other outputs gives each as its own column).

``top_k`` names each class as the export or run directory names its outputs (``class_names``, which every
export's info file holds); where none are known (a server's answers through ``--url``), as the rows of this
prediction named a class where it was the most probable, else by its index. Standard library only.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from kerasapps.core.errors import UsageError

OUT_SUFFIXES = (".csv", ".jsonl")
TABLE_ROW = re.compile(r"^(?P<file>.+\.(?:csv|jsonl))\[(?P<row>\d+)\]$", re.IGNORECASE)


def check_out(out) -> Path | None:
    """``out`` as a Path, or None; a one-line error for a suffix other than .csv or .jsonl."""
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise UsageError(f"--out {path}: give a .csv or .jsonl file (one row per input)")
    return path


def input_name(source: str) -> str:
    """``t.csv[0]`` (a table's first row, as predict names it) -> ``t.csv:1``; any other name as it is."""
    match = TABLE_ROW.match(source)
    return f"{match['file']}:{int(match['row']) + 1}" if match else source


def _probabilities(row: dict) -> list[float] | None:
    """Each class's probability: the ``probabilities`` output, or for a binary head [1 - p, p]."""
    if "probabilities" in row:
        return [float(p) for p in row["probabilities"]]
    if "probability" in row and "classes" in row:
        return [1.0 - float(row["probability"]), float(row["probability"])]
    return None


def class_names_seen(rows: Sequence[dict]) -> dict[int, str]:
    """{index: class name} from the rows: the name a row gives its most probable class."""
    names = {}
    for row in rows:
        probabilities = _probabilities(row)
        if probabilities is not None and "classes" in row:
            names.setdefault(max(range(len(probabilities)), key=probabilities.__getitem__), str(row["classes"]))
    return names


def out_row(row: dict, top_k: int, names: dict[int, str]) -> dict:
    """One prediction as a row of ``--out``."""
    out = {"input": input_name(str(row["input"]))}
    probabilities = _probabilities(row)
    if probabilities is None or "classes" not in row:
        values = {key: value for key, value in row.items() if key != "input"}
        return {**out, **({"prediction": _scalar(next(iter(values.values())))} if len(values) == 1 else values)}
    best = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])[:top_k]
    top = " ".join(f"{names.get(i, str(i))}:{probabilities[i]:.4f}" for i in best)
    return {**out, "class": str(row["classes"]), "probability": round(probabilities[best[0]], 6), "top_k": top}


def _scalar(value):
    """A one-element list (a regression's [N, 1] output) as its element."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def write_predictions(rows: Sequence[dict], out, top_k: int = 3, class_names: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (predict's) to ``out`` (.csv or .jsonl), one row per input, atomically; ``class_names``:
    the model's name for each output class, in order, where known."""
    path = check_out(out)
    names = dict(enumerate(map(str, class_names))) if class_names is not None else class_names_seen(rows)
    table = [out_row(row, top_k, names) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            if path.suffix.lower() == ".jsonl":
                stream.writelines(json.dumps(item, default=str) + "\n" for item in table)
            else:
                columns = list(dict.fromkeys(key for item in table for key in item))
                writer = csv.DictWriter(stream, fieldnames=columns)
                writer.writeheader()
                writer.writerows({key: _cell(value) for key, value in item.items()} for item in table)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value
