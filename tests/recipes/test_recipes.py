"""Registry-driven tests: every registered recipe gets these by being registered.

Each recipe trains a smoke run on tiny generated data, exports, and its SavedModel's
``serving_default`` answers raw inputs exactly as the in-memory serving function does.
"""

import numpy as np
import pytest

import kerasapps
from kerasapps.core.registry import REGISTRY

NAMES = REGISTRY.names()


def raw_inputs(spec, batch=2):
    import tensorflow as tf

    shape = [batch] + [32 if d is None else d for d in spec.shape[1:]]
    if spec.dtype == tf.string:
        return tf.constant(["the movie was great"] * batch)
    if spec.dtype.is_integer:
        return tf.constant(np.random.default_rng(0).integers(0, 255, shape), spec.dtype)
    return tf.constant(np.random.default_rng(0).random(shape), spec.dtype)


@pytest.mark.parametrize("name", NAMES)
def test_info_describes_every_hyper_parameter(name):
    info = kerasapps.info(name)
    assert info["parameters"] > 0 and info["summary"]
    assert all(hp["type"] for hp in info["hparams"])
    assert info["layers"][-1]["name"] in ("predictions", "logits", "probability", "next_char")


@pytest.mark.parametrize("name", NAMES)
def test_smoke_train_export_and_serve(name, tiny_data_dir, tmp_path):
    import tensorflow as tf

    from kerasapps.savedmodel.export import serving_function
    from kerasapps.training import checkpoints

    run = kerasapps.train(name, run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    assert all(np.isfinite(v) for v in run.metrics["test"].values())
    path = kerasapps.export(run.run_dir, out=tmp_path / "models")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (input_name, spec), = serve.structured_input_signature[1].items()
    inputs = raw_inputs(spec)
    exported = serve(**{input_name: inputs})
    recipe = kerasapps.get_recipe(name)
    model = checkpoints.load_model(run.run_dir / "model.keras", compile=False)
    in_memory = serving_function(recipe, model)(inputs)
    assert set(exported) == set(in_memory)
    for key in exported:
        if exported[key].dtype == tf.string:
            assert exported[key].numpy().tolist() == in_memory[key].numpy().tolist()
        else:
            np.testing.assert_allclose(exported[key].numpy(), in_memory[key].numpy(), rtol=1e-5, atol=1e-6)
