"""Reading ``kerasapps predict``'s input files into batches that fit a signature's input.

What is read follows from the input's dtype and shape alone, so the same code serves a local
export, a run directory and a remote server's metadata: numeric inputs take PNG/JPEG/BMP/GIF
images (converted to the input's channels) and ``.npy`` arrays; string inputs take text files,
one example per file (its whole UTF-8 text: a review, a prompt), or, for an input named ``*_bytes`` (an image
export's ``image_bytes``), each file's bytes as they are. Neither TensorFlow nor Keras is
imported here: images are read with Pillow and must have the input's size, unless the caller passes
``decode`` (a local model: the training pipeline's own decoding and resizing, or for an input of any size its
decoding alone, which the export's own fitting follows, so that a model trained on a folder of photos of any size
answers for those photos as it was trained and evaluated on them).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kerasapps.core.errors import UsageError
from kerasapps.data.images import MAX_IMAGE_PIXELS

MAX_PIXELS = MAX_IMAGE_PIXELS  # an image larger than this is refused from its header, before it is decoded


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One signature input: its name, shape (None for any size; the first is the batch) and numpy dtype name."""

    name: str
    shape: tuple
    dtype: str  # "uint8", "float32", ..., or "string"

    @classmethod
    def of(cls, tensor_spec, name: str | None = None) -> "InputSpec":
        """From a ``tf.TensorSpec``."""
        dtype = "string" if tensor_spec.dtype.name == "string" else tensor_spec.dtype.as_numpy_dtype.__name__
        return cls(name or tensor_spec.name, tuple(tensor_spec.shape.as_list()), dtype)

    def describe(self) -> str:
        dims = ", ".join(["N"] + ["?" if d is None else str(d) for d in self.shape[1:]])
        return f"{self.dtype} [{dims}]"


Decode = Callable[[Path, tuple], np.ndarray]  # (image file, the input's [H, W(, C)]) -> uint8 array of that shape
# (H and W None: of the file's own size)


def load_inputs(paths: Sequence[str], spec: InputSpec, decode: Decode | None = None
                ) -> list[tuple[np.ndarray, list[str], list[int]]]:
    """Read ``paths`` into batches for ``spec``: ``(batch, source names, positions)`` per input shape
    (inputs of any size, such as photos for a captioner, are batched by size); ``positions`` number
    the examples in the order given, so results can be put back in that order."""
    if not paths:
        raise UsageError("no input files given")
    if spec.dtype == "string":
        if len(spec.shape) != 1:
            raise UsageError(f"input '{spec.name}' is a string tensor of shape {list(spec.shape)}; predict reads "
                             "one text file per example into string inputs of shape [N]")
        read = read_byte_inputs if spec.name.endswith("_bytes") else read_text_inputs
        return [(read(paths, spec.name), [str(p) for p in paths], list(range(len(paths))))]
    groups: dict[tuple, tuple[list, list, list]] = {}
    count = 0
    for name in paths:
        array, sources = _read_numeric(Path(name), spec, decode)
        batches, names, positions = groups.setdefault(array.shape[1:], ([], [], []))
        batches.append(array)
        names.extend(sources)
        positions.extend(range(count, count + len(sources)))
        count += len(sources)
    return [(np.concatenate(batches), names, positions) for batches, names, positions in groups.values()]


def load_table_inputs(paths: Sequence[str], specs: Sequence[InputSpec]) -> list[tuple[dict, list[str], list[int]]]:
    """Tables (``.csv``/``.jsonl``, a row per example) for a signature of named columns ([N] each): one batch
    per file, its columns matched to the inputs by name (:func:`kerasapps.data.tables.input_name`); in a numeric
    column, a missing-value marker (:data:`kerasapps.data.tables.MISSING`) is NaN, which the model imputes."""
    from kerasapps.data.tables import SUFFIXES, input_name, number_or_nan, read_table

    batches, count = [], 0
    for name in paths:
        if Path(name).suffix.lower() not in SUFFIXES:
            raise UsageError(f"{name}: this model takes the named columns {', '.join(s.name for s in specs)}; "
                             "give .csv or .jsonl tables, a row per example")
        table = read_table(Path(name))
        by_input = {input_name(column): values for column, values in table.items()}
        missing = [spec.name for spec in specs if spec.name not in by_input]
        if missing:
            raise UsageError(f"{name} lacks the column(s) {', '.join(missing)} (it has {', '.join(table)})")
        batch = {}
        for spec in specs:
            values = by_input[spec.name]
            if spec.dtype == "string":
                batch[spec.name] = np.array([str(v) for v in values], dtype=object)
                continue
            numbers = [number_or_nan(v) for v in values]  # missing-value markers (empty, NA, n/a, ...): NaN
            if None in numbers:
                row = numbers.index(None)
                raise UsageError(f"{name}, row {row + 1}: column {spec.name!r} takes numbers (or a missing-value "
                                 f"marker); got {values[row]!r}")
            batch[spec.name] = np.array(numbers, dtype=spec.dtype)
        rows = len(next(iter(table.values())))
        batches.append((batch, [f"{name}[{i}]" for i in range(rows)], list(range(count, count + rows))))
        count += rows
    return batches


def read_inputs(paths: Sequence[str], inputs: dict[str, InputSpec], decode: Decode | None = None
                ) -> list[tuple[dict, list[str], list[int]]]:
    """(named input batch, sources, positions) per batch: files for a single-input signature (images, ``.npy``,
    text files), tables (``.csv``/``.jsonl``) for a signature of named columns."""
    if len(inputs) == 1:
        (name, spec), = inputs.items()
        return [({name: batch}, sources, positions) for batch, sources, positions in load_inputs(paths, spec, decode)]
    if all(len(spec.shape) == 1 for spec in inputs.values()):
        return load_table_inputs(paths, list(inputs.values()))
    raise UsageError(f"predict reads single-input signatures and tables of named columns; this one takes "
                     f"{', '.join(f'{n} {s.describe()}' for n, s in inputs.items())}")


def read_text_inputs(paths: Sequence[str], what: str = "text") -> np.ndarray:
    """One example per file, its whole UTF-8 text, as a numpy object array."""
    texts = []
    for name in paths:
        try:
            texts.append(Path(name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {what} file {name} as UTF-8 text: {exc}") from None
    return np.array(texts, dtype=object)


def read_byte_inputs(paths: Sequence[str], what: str = "image") -> np.ndarray:
    """One example per file, its bytes as they are (an encoded image), as a numpy object array; an image is
    checked from its header to be one predict reads (:data:`MAX_PIXELS`)."""
    from kerasapps.data.files import IMAGE_SUFFIXES

    data = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"input file not found: {path}")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            _read_image(path, (None, None), header_only=True)
        try:
            data.append(path.read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {what} file {name}: {exc}") from None
    return np.array(data, dtype=object)


def _read_numeric(path: Path, spec: InputSpec, decode: Decode | None = None) -> tuple[np.ndarray, list[str]]:
    shape, dtype = spec.shape, np.dtype(spec.dtype)
    if len(shape) not in (3, 4):
        raise UsageError(f"this model takes {spec.describe()} input; predict reads images and .npy arrays "
                         "for image inputs [N, H, W] or [N, H, W, C]")
    expected = shape[1:]
    if not path.is_file():
        raise UsageError(f"input file not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        single = array.ndim == len(expected)
        if single:
            array = array[None]
    elif decode is not None and np.dtype(dtype) == np.uint8:
        _read_image(path, expected, header_only=True)  # a picture, not too large: then as training reads it
        array, single = decode(path, expected)[None], True
    else:
        array, single = _read_image(path, expected)[None], True
    if array.ndim != len(shape) or any(d is not None and d != a for d, a in zip(expected, array.shape[1:])):
        raise UsageError(f"{path} has shape {list(array.shape[1:] if single else array.shape)}; "
                         f"the model takes arrays of {spec.describe()}")
    if np.issubdtype(dtype, np.integer) and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise UsageError(f"{path} has values outside the {spec.dtype} range [{info.min}, {info.max}]")
    sources = [str(path)] if single else [f"{path}[{i}]" for i in range(len(array))]
    return array.astype(dtype), sources


def _read_image(path: Path, expected: tuple, header_only: bool = False) -> np.ndarray | None:
    """The image as a uint8 array of ``expected`` [H, W(, C)] (Pillow; it must have that size where H and W
    are given); ``header_only``: check that it is a picture of a size predict reads, and decode nothing."""
    from PIL import Image, UnidentifiedImageError

    channels = expected[2] if len(expected) == 3 else None
    try:
        with warnings.catch_warnings():  # PIL warns of a decompression bomb; the size check below refuses it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only: the size is checked before decoding
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UsageError(f"{path} is {width}x{height} pixels, more than predict reads "
                                 f"({MAX_PIXELS:,} pixels); resize it first")
            if header_only:
                return None
            if expected[0] is not None and (width, height) != (expected[1], expected[0]):
                raise UsageError(f"{path} is {width}x{height} pixels; the model takes "
                                 f"{expected[1]}x{expected[0]} images")
            array = np.asarray(image.convert("L" if channels in (None, 1) else "RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None
    if channels == 1:
        array = array[..., None]
    return array
