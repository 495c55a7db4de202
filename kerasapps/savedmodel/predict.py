"""Calling an export's signatures: ``kerasapps predict`` and ``kerasapps generate`` on a SavedModel
(``saved_models/NAME`` for its newest version) or on a run directory (its final model, through the
same serving functions the export would hold)."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasapps.core.errors import UsageError
from kerasapps.core.quiet_import import quiet_native
from kerasapps.savedmodel import portable, saved_model  # noqa: F401  (register the formats predict reads)
from kerasapps.savedmodel.formats import EXPORT_INFO, SAVED_MODEL_MARKER, is_export, versions
from kerasapps.savedmodel.functions import run_serving, serving_function, serving_model
from kerasapps.savedmodel.inputs import InputSpec, read_inputs
from kerasapps.savedmodel.signatures import BYTES_SIGNATURE

CLASSIFYING = ("serving_default", BYTES_SIGNATURE)  # the signatures whose classes the export's class names name


class Signature:
    """One signature of an export or a run directory: its inputs and a call ``signature(**inputs) -> dict``."""

    square = False  # an ONNX or LiteRT core of any-size images: files are read to its size as their central square

    def __init__(self, function, inputs: dict[str, InputSpec], owner, class_names=None):
        self._function, self.inputs, self._owner = function, inputs, owner  # the owner keeps the model alive
        # a classifier's name for each output class in order (``--top-k`` names them), where the export says
        self.class_names = tuple(class_names) if class_names is not None else None

    def __call__(self, **inputs) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in self._function(**inputs).items()}


def resolve_model_path(model: str | os.PathLike) -> Path:
    """``saved_models/NAME`` -> its newest version; an export or a run directory as it is."""
    path = Path(model)
    if path.is_dir() and not is_export(path) and versions(path):
        path = path / str(versions(path)[-1])
    return path


def known_classes(model: str | os.PathLike) -> str | None:
    """What a classifier export or run directory knows where it is less than its inputs can show
    (``the digits 5-9``, :attr:`Serving.known_classes`), or None."""
    path = resolve_model_path(model)
    if is_export(path):
        info = path / EXPORT_INFO
        return json.loads(info.read_text()).get("knows") if info.is_file() else None
    from kerasapps.training import rundir

    recipe, _, _ = rundir.open_run(path)
    return run_serving(recipe, path).known_classes


def load_signature(model: str | os.PathLike, signature: str = "serving_default") -> Signature:
    """The ``signature`` of an export, an export root (newest version) or a run directory."""
    import tensorflow as tf

    path = resolve_model_path(model)
    if is_export(path) and not is_export(path, SAVED_MODEL_MARKER):
        return portable_signature(path, signature)
    if is_export(path):
        loaded = tf.saved_model.load(str(path))
        if signature not in loaded.signatures:
            raise UsageError(f"{path} has no signature '{signature}' (it has {', '.join(loaded.signatures)})")
        function = loaded.signatures[signature]
        specs = function.structured_input_signature[1]
        info = path / EXPORT_INFO
        names = json.loads(info.read_text()).get("class_names") if info.is_file() else None
        return Signature(function, {name: InputSpec.of(spec, name) for name, spec in specs.items()}, loaded,
                         names if signature in CLASSIFYING else None)
    if not path.is_dir():
        raise UsageError(f"{path} is neither a SavedModel export nor a run directory")
    from kerasapps.training import rundir
    from kerasapps.training.checkpoints import load_model

    recipe, hp, _ = rundir.open_run(path)
    keras_model = serving_model(load_model(rundir.final_model_path(path), compile=False), hp.tta)
    serving = run_serving(recipe, path)
    functions = {"serving_default": serving_function(recipe, keras_model, serving),
                 **serving.extra_endpoints(keras_model, recipe.preprocess)}
    if signature not in functions:
        raise UsageError(f"{path} has no signature '{signature}' (it has {', '.join(functions)})")
    function = functions[signature]
    structure = function.input_signature  # a list of specs, or of one dict of named specs (a table's columns)
    specs = tf.nest.flatten(structure)

    def call(**inputs):
        return function(*tf.nest.pack_sequence_as(structure, [inputs[spec.name] for spec in specs]))

    return Signature(call, {spec.name: InputSpec.of(spec) for spec in specs}, keras_model,
                     serving.class_labels() if signature in CLASSIFYING else None)


def portable_signature(path: Path, signature: str = "serving_default") -> Signature:
    """An ONNX or LiteRT export's numeric core (:mod:`kerasapps.savedmodel.portable`) as a signature that answers
    as the SavedModel does: its info file gives the inputs and the class names (``classes``, from the most
    probable output index); an input of any size is fitted by predict's reading, as training read files."""
    info = json.loads((path / EXPORT_INFO).read_text())
    if signature != "serving_default":
        raise UsageError(f"{path} ({info['format']}) has only the signature 'serving_default'")
    inputs = {name: InputSpec(name, (None, *spec["shape"]), spec["dtype"]) for name, spec in info["inputs"].items()}
    if (path / "model.onnx").is_file():
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]

        def core(**batch):
            return dict(zip(names, session.run(names, batch)))
        owner = session
    else:
        from ai_edge_litert.interpreter import Interpreter

        owner = Interpreter(model_path=str(path / "model.tflite"))
        runner = owner.get_signature_runner()
        first = [True]

        def core(**batch):
            if first:  # the runtime says on fd 2 which delegate it created, at the first call
                first.clear()
                with quiet_native():
                    return runner(**batch)
            return runner(**batch)
    labels = info.get("class_names")

    def call(**batch):
        outputs = {name: np.asarray(value) for name, value in core(**batch).items()}
        if "probabilities" in outputs:
            index = outputs["probabilities"].argmax(axis=-1)
            outputs["classes"] = (np.array(labels, dtype=object)[index] if labels is not None else
                                  np.array([str(i) for i in outputs.get("class_ids", index)], dtype=object))
        for name, text in info.get("texts", {}).items():  # text the core gives as token ids (the captions)
            outputs[name] = texts_of(outputs.pop(text["ids"]), text)
        return outputs

    signature = Signature(call, inputs, owner, labels)
    signature.square = bool(info.get("fit_images", {}).get("square", False))
    return signature


def texts_of(ids: np.ndarray, text: dict) -> np.ndarray:
    """Token ids [N, L] -> one text each, as the SavedModel makes it inside: the words of the ids up to the first
    ``end``, leaving out ids below ``skip_below`` (padding, unknown words), joined by spaces."""
    words = text["vocabulary"]
    out = []
    for row in np.asarray(ids).tolist():
        kept = []
        for token in row:
            if token == text["end"]:
                break
            if token >= text["skip_below"]:
                kept.append(words[token])
        out.append(" ".join(kept))
    return np.array(out, dtype=object)


def rows(outputs: dict[str, np.ndarray], sources: Sequence[str]) -> list[dict]:
    """One dict per example: ``input`` (its file) and each output as plain Python values (strings decoded)."""
    out = []
    for i, source in enumerate(sources):
        row = {"input": source}
        for key, value in outputs.items():
            item = value[i].tolist() if hasattr(value[i], "tolist") else value[i]
            row[key] = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        out.append(row)
    return out


def decode_like_training(path: Path, shape: tuple, square: bool = False) -> np.ndarray:
    """An image file as a ``--data`` run's training and evaluation read it: TensorFlow's decoding, converted to
    the input's channels and resized to its size (:func:`kerasapps.data.images.decode_image`); for an input of
    any size, at its own size (the export fits it as training did)."""
    import tensorflow as tf

    from kerasapps.data.images import decode_image, op_error_message

    try:
        return decode_image(tf.io.read_file(str(path)), shape, square).numpy()
    except tf.errors.OpError as exc:
        raise UsageError(f"cannot decode image {path}: {op_error_message(exc)}") from None


def predict(model, inputs: Sequence[str], *, signature: str = "serving_default") -> list[dict]:
    """Run an export or a run directory's model on input files (images, ``.npy`` arrays or text files, or
    tables for a model of named columns, as the signature takes); one dict per example, in the order given."""
    return predict_files(load_signature(model, signature), inputs)


def predict_files(function: Signature, inputs: Sequence[str]) -> list[dict]:
    """:func:`predict` with a signature already loaded."""
    decode = functools.partial(decode_like_training, square=function.square)
    placed = {}
    for batch, sources, positions in read_inputs(list(inputs), function.inputs, decode=decode):
        placed.update(zip(positions, rows(function(**batch), sources)))
    return [placed[i] for i in sorted(placed)]


def generation_inputs(prompt, length, temperature, seed) -> tuple[bool, tuple]:
    """(whether ``prompt`` was one text, the ``generate`` signature's inputs as tensors); one-line errors
    for prompts that are not UTF-8 text, a negative length or a temperature that is not a finite number >= 0."""
    import tensorflow as tf

    single = isinstance(prompt, (str, bytes))
    prompts = [prompt] if single else list(prompt)
    for item in prompts:
        if isinstance(item, bytes):
            try:
                item.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"prompt is not valid UTF-8 text: {item[:40]!r} ({exc.reason} at byte "
                                 f"{exc.start})") from None
        elif not isinstance(item, str):
            raise UsageError(f"prompt must be text; got {type(item).__name__}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise UsageError(f"length must be a non-negative integer; got {length!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not np.isfinite(temperature) \
            or temperature < 0:
        raise UsageError(f"temperature must be a finite number >= 0; got {temperature!r}")
    return single, (tf.constant([p.encode("utf-8") if isinstance(p, str) else p for p in prompts], tf.string),
                    tf.constant(int(length), tf.int32), tf.constant(float(temperature), tf.float32),
                    tf.constant(int(seed), tf.int64))


def generate(model, prompt: str | bytes | Sequence[str | bytes] = "", *, length: int, temperature: float,
             seed: int) -> str | list[str]:
    """prompt + continuation (a list for a list of prompts), from the ``generate`` signature of a
    text-generation export, export root or run directory (``char_lm``)."""
    single, (prompts, length, temperature, seed) = generation_inputs(prompt, length, temperature, seed)
    function = load_signature(model, "generate")
    result = function(prompt=prompts, length=length, temperature=temperature, seed=seed)
    texts = [t.decode("utf-8") for t in result["text"]]
    return texts[0] if single else texts
