"""ONNX and LiteRT exports: the numeric core of a run's serving signature as one file, with what the file cannot
hold written beside it.

The core is the SavedModel's ``serving_default`` (:func:`kerasapps.savedmodel.export.serving_function`: the raw
input, the recipe's preprocessing, the model) without its string outputs: ``probabilities`` and ``class_ids``
for a classifier, ``prediction`` for a regression. The class names, and for an image model of any input size
how a file becomes its fixed-size input (:func:`kerasapps.data.images.fit_images`, the function training reads
files with: tf2onnx and LiteRT's built-in ops lack the antialiased resize; a ``Resizing`` layer at the model's
input, which at that size changes nothing, is left out: :func:`without_input_resize`), go into the export's info
file (``assets.extra/kerasapps.json``), which :mod:`kerasapps.savedmodel.predict` reads; so does what a signature
answers as text made of numbers (the captioner's token ids and vocabulary: ``Serving.numeric_outputs``). A model
that takes text (or a table's string columns) is refused in one line: neither converter holds string ops.

ONNX goes through tf2onnx (what ``keras.Model.export(format="onnx")`` uses), run by onnxruntime. LiteRT goes
through TensorFlow's converter (what ``format="litert"`` uses) with built-in ops only (the pip runtime,
``ai-edge-litert``, has no Select TF ops), optionally quantised: ``float16`` weights, or ``int8`` post-training
quantisation calibrated on training examples (dynamic-range int8 where full int8 does not convert, or answers
otherwise than the float model on training examples, said in one line).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from kerasapps.core.compat import frozen_function
from kerasapps.core.errors import RunError, UsageError
from kerasapps.core.quiet_import import quiet_native
from kerasapps.core.schema import QUANTIZATIONS
from kerasapps.savedmodel.formats import ExportFormat, register_export_format
from kerasapps.savedmodel.functions import run_serving, serving_model

log = logging.getLogger("kerasapps")

CALIBRATION_EXAMPLES = 300  # int8: the training examples the converter calibrates activation ranges on
AGREEMENT_EXAMPLES = 50  # full integer int8 is kept where it answers as the float model on most of these
MIN_INT8_AGREEMENT = 0.9
ONNX_OPSET = 17


def numeric_core(recipe, hp, run_dir, model_path):
    """(the ``tf.function`` of the numeric outputs, its input signature, the info a predict side needs)."""
    import tensorflow as tf

    from kerasapps.training.checkpoints import load_model

    serving = run_serving(recipe, run_dir)
    specs = serving.input_signature()[0]
    named = specs if isinstance(specs, dict) else {specs.name: specs}
    strings = [name for name, spec in named.items() if spec.dtype == tf.string]
    if strings:
        raise UsageError(f"recipe {recipe.name!r} takes text ({', '.join(strings)}: strings), and ONNX and LiteRT "
                         "hold no string ops for its preprocessing; export it as a SavedModel (--format saved_model)")
    info = {"inputs": {name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()[1:]}
                       for name, spec in named.items()}}
    read_shape = getattr(serving, "read_shape", None)
    if not isinstance(specs, dict) and None in specs.shape.as_list()[1:] and read_shape:
        # any-size images: the core takes them at the size training read files to; predict fits them to it
        serving = serving.fixed_size()
        specs = tf.TensorSpec((None, *read_shape), specs.dtype, name=specs.name)
        info["inputs"] = {specs.name: {"dtype": specs.dtype.name, "shape": list(read_shape)}}
        info["fit_images"] = {"shape": list(read_shape), "square": bool(getattr(serving, "square", False))}
    model = load_model(model_path, compile=False)
    if "fit_images" in info:
        model = without_input_resize(model, read_shape)
    model = serving_model(model, hp.tta)

    texts = {}

    def numeric(inputs):
        outputs, made = serving.numeric_outputs(model, recipe.preprocess, inputs)
        texts.update(made)
        return outputs

    function = tf.function(numeric, input_signature=[specs])
    if not function.get_concrete_function().structured_outputs:  # traced now: the text outputs are known
        raise UsageError(f"recipe {recipe.name!r} answers only with text, which ONNX and LiteRT hold no string ops "
                         "to make; export it as a SavedModel (--format saved_model)")
    if texts:
        info["texts"] = texts
    return function, specs, model, info  # the class names: every export's info file holds them (export.py)


def without_input_resize(model, shape):
    """``model`` taking images of ``shape`` (height, width, channels), with a ``Resizing`` layer to that height and
    width that reads its input left out: at that size it returns its input unchanged (its crop keeps a square
    whole, its resize samples each pixel at its own centre), and neither converter holds its antialiased resize.
    The predict side fits files to ``shape`` as training read them. Other models are returned as they are."""
    import keras

    inputs = [id(tensor) for tensor in model.inputs]
    dropped = {layer.name for layer in model.layers if isinstance(layer, keras.layers.Resizing)
               and (layer.height, layer.width) == tuple(shape[:2]) and id(layer.input) in inputs}
    if len(model.inputs) != 1 or len(shape) != len(model.inputs[0].shape) - 1 or not dropped:
        return model

    def same_layer(layer):  # the layers themselves, so their trained weights come along
        return keras.layers.Identity(name=layer.name) if layer.name in dropped else layer

    return keras.models.clone_model(model, input_tensors=keras.Input(tuple(shape), name=model.inputs[0].name),
                                    clone_function=same_layer)


def write_onnx(recipe, hp, run_dir, model_path, folder: Path, bar) -> dict:
    """``model.onnx``: the numeric core, its variables and captured constants frozen, through tf2onnx, with the
    signature's input and output names."""
    import tf2onnx

    function, specs, _, info = numeric_core(recipe, hp, run_dir, model_path)
    bar.advance(description=f"exporting {recipe.name}: converting to ONNX")
    concrete = function.get_concrete_function()
    frozen = frozen_function(concrete)  # tf2onnx's from_function leaves captured constants (a table's
    # standardisation) as graph inputs
    outputs = dict(zip(sorted(concrete.structured_outputs), [t.name for t in frozen.outputs]))
    inputs = {t.name.split(":")[0]: t.name for t in frozen.inputs}
    try:
        proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=list(inputs.values()),
                                                  output_names=list(outputs.values()), opset=ONNX_OPSET)
    except Exception as exc:  # tf2onnx raises what its op handlers raise
        raise RunError(f"tf2onnx could not convert {recipe.name}: {_first_line(exc)}") from None
    missing = sorted({node.op_type for node in proto.graph.node if node.domain in ("", "ai.onnx")
                      and not onnx_op_exists(node.op_type)})
    if missing:  # tf2onnx leaves an op it cannot convert as it was, and onnxruntime refuses the file
        raise UsageError(f"recipe {recipe.name!r}: {_unheld('ONNX has no op', missing)} in its model; export it "
                         "as a SavedModel")
    _rename(proto.graph, {**{v: k for k, v in inputs.items()}, **{v: k for k, v in outputs.items()}})
    (folder / "model.onnx").write_bytes(proto.SerializeToString())
    bar.advance()
    info["outputs"] = sorted(outputs)
    bar.advance()
    return info


# what TensorFlow ops the converters cannot hold do, for the one-line refusal
UNHELD = {"ScaleAndTranslate": "an antialiased resize inside the model", "DecodeImage": "image decoding",
          "StringLower": "text standardisation"}


def _unheld(what: str, ops) -> str:
    """``recipe's model needs OP (what it does)`` for the one-line refusal."""
    said = [f"{op} ({UNHELD[op]})" if op in UNHELD else op for op in ops]
    return f"{what} for {', '.join(said)}"


def onnx_op_exists(op_type: str) -> bool:
    import onnx.defs

    return onnx.defs.has(op_type)


def _rename(graph, names: dict[str, str]) -> None:
    """Give an ONNX graph's inputs and outputs the signature's names (TensorFlow's carry ``:0``)."""
    for value in [*graph.input, *graph.output]:
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
        node.output[:] = [names.get(name, name) for name in node.output]


def write_litert(recipe, hp, run_dir, model_path, folder: Path, bar, quantize: str = "none") -> dict:
    """``model.tflite``: the numeric core through TensorFlow's converter, built-in ops only, quantised as asked."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise UsageError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}; got {quantize!r}")
    function, specs, model, info = numeric_core(recipe, hp, run_dir, model_path)
    bar.advance(description=f"exporting {recipe.name}: converting to LiteRT" +
                (f" ({quantize})" if quantize != "none" else ""))
    import keras

    archive = keras.export.ExportArchive()  # as keras.Model.export(format="litert") does: through a SavedModel,
    archive.track(model)  # whose variables the converter freezes (a concrete function's stay variables)
    archive.add_endpoint("serving_default", function)
    saved = folder / ".savedmodel"
    archive.write_out(str(saved), verbose=False)

    def converter():
        made = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        made.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            made.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            made.target_spec.supported_types = [tf.float16]
        return made

    info["quantize"] = quantize
    try:
        if quantize == "int8":
            made = converter()
            examples = _calibration(recipe, run_dir, specs)
            made.representative_dataset = examples
            try:
                with quiet_native():
                    flat = made.convert()
                    agreement = _agreement(flat, function, specs, examples)
                info["int8"] = "full integer (calibrated on training examples)"
                if agreement < MIN_INT8_AGREEMENT:  # it converted, but answers otherwise (a beam search's scores)
                    raise ValueError(f"it answered as the float model on only {agreement:.0%} of "
                                     f"{AGREEMENT_EXAMPLES} training examples")
            except Exception as exc:  # a model whose ops have no int8 kernel, or whose answers it breaks
                log.warning("int8: full integer quantisation did not serve (%s); wrote dynamic-range int8 "
                            "(int8 weights, float activations)", _first_line(exc))
                with quiet_native():
                    flat = converter().convert()
                info["int8"] = "dynamic range (int8 weights, float activations)"
        else:
            with quiet_native():
                flat = converter().convert()
    except Exception as exc:
        ops = sorted(name for name in UNHELD if name in str(exc))
        said = _unheld("LiteRT has no built-in op", ops) + " in its model" if ops else \
            f"LiteRT's built-in ops cannot hold its model: {_first_line(exc)}"
        raise UsageError(f"recipe {recipe.name!r}: {said}; export it as a SavedModel") from None
    finally:
        shutil.rmtree(saved, ignore_errors=True)
    (folder / "model.tflite").write_bytes(flat)
    bar.advance()
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=flat).get_signature_runner()
    info["outputs"] = sorted(runner.get_output_details())
    bar.advance()
    return info


def _calibration(recipe, run_dir, specs):
    """A generator of ``CALIBRATION_EXAMPLES`` training inputs, one at a time, for the int8 converter."""
    import numpy as np

    from kerasapps.core.recipe import DataContext
    from kerasapps.data.files import materialize
    from kerasapps.data.sources import load_splits
    from kerasapps.data.splits import take
    from kerasapps.training import rundir

    _, hp, saved = rundir.open_run(run_dir)
    ctx = DataContext.from_option(rundir.recorded_data_dir(run_dir), bool(saved.get("smoke", False)),
                                  saved.get("data"))
    x, _ = take(load_splits(recipe, hp, ctx, test=False)["train"], slice(0, CALIBRATION_EXAMPLES))
    if isinstance(x, (tuple, list)):  # a model trained on several inputs (the captioner's images and words)
        x = x[0]  # whose export takes the first
    x = np.asarray(materialize(x)).astype(specs.dtype.as_numpy_dtype)

    def examples():
        for i in range(len(x)):
            yield [x[i:i + 1]]
    return examples


def _agreement(flat: bytes, function, specs, examples) -> float:
    """The share of the first ``AGREEMENT_EXAMPLES`` calibration examples that the LiteRT model ``flat`` answers as
    the float ``function`` does: the same integer outputs (class ids, a caption's token ids) and the same most
    probable class; 1.0 for a model with neither (a regression) or of several inputs."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(specs, dict):
        return 1.0
    runner = Interpreter(model_content=flat).get_signature_runner()
    same = []
    for n, (x,) in enumerate(examples()):
        if n == AGREEMENT_EXAMPLES:
            break
        want = {name: np.asarray(value) for name, value in function(x).items()}
        got = runner(**{specs.name: x})
        keys = [name for name, value in want.items() if np.issubdtype(value.dtype, np.integer)]
        if not keys and "probabilities" not in want:
            return 1.0
        same.append(all(np.array_equal(want[k], got[k]) for k in keys) if keys else
                    np.array_equal(want["probabilities"].argmax(-1), np.asarray(got["probabilities"]).argmax(-1)))
    return float(np.mean(same)) if same else 1.0


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


ONNX = register_export_format(ExportFormat(
    "onnx", "model.onnx", write_onnx, "onnx_models",
    summary="ONNX (onnxruntime, Triton's ONNX backend): the numeric core, class names beside it"))
LITERT = register_export_format(ExportFormat(
    "litert", "model.tflite", write_litert, "litert_models",
    summary="LiteRT (TensorFlow Lite) flatbuffer, built-in ops only, optionally float16 or int8",
    options=("quantize",)))
