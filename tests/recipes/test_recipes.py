"""Registry-driven tests: every registered recipe gets these by being registered.

Each recipe trains a smoke run on its real data (CI; tiny generated data elsewhere), evaluates,
exports, and its reloaded SavedModel's ``serving_default`` answers real raw inputs sanely and
exactly as the in-memory serving function does.
"""

import numpy as np
import pytest

import kerasapps
from kerasapps.core.registry import REGISTRY

NAMES = REGISTRY.names()


@pytest.mark.parametrize("name", NAMES)
def test_info_describes_every_hyper_parameter(name):
    info = kerasapps.info(name)
    assert info["parameters"] > 0 and info["summary"]
    schema = kerasapps.get_recipe(name).schema()
    assert [hp["key"] for hp in info["hparams"]] == list(schema)  # every key, in the schema's order
    for hp in info["hparams"]:
        assert hp["type"].split(" or ")[0] in ("int", "float", "str", "bool"), hp
        assert hp["type"] == schema[hp["key"]].type_name and hp["default"] == schema[hp["key"]].default, hp
        assert hp["help"].strip(), f"{hp['key']} has no description"
    assert info["layers"][-1]["name"] in ("predictions", "logits", "probability", "next_char")


def real_raw_inputs(recipe, hp, data_dir, specs, source=None, count=4) -> dict:
    """The first test examples of the recipe's own data, raw, as its serving signature takes them."""
    import tensorflow as tf

    from kerasapps.core.recipe import DataContext
    from kerasapps.data.sources import load_splits
    from kerasapps.data.splits import take

    x, _ = take(load_splits(recipe, hp, DataContext(data_dir, smoke=True, source=source))["test"], slice(0, count))
    if isinstance(x, dict):  # named columns (a table)
        return {name: tf.constant(np.asarray(x[name]).tolist(), spec.dtype) for name, spec in specs.items()}
    (name, spec), = specs.items()
    if isinstance(x, (tuple, list)):  # (images, captions in): the export takes the images
        x = x[0]
    x = np.asarray(x)
    if spec.dtype == tf.string and x.dtype.kind in "iu":  # character codes (char_lm): a prompt from each
        x = np.array(["".join(map(chr, row[:40])) for row in x], dtype=object)
    return {name: tf.constant(x.tolist() if x.dtype == object else x, spec.dtype)}


@pytest.mark.parametrize("name", NAMES)
def test_train_evaluate_export_reload_and_serve(name, recipe_data_dir, real_tables, tmp_path):
    """On its real data in CI: smoke training, evaluate, export, reload with tf.saved_model.load, and
    serving_default on real raw inputs, checked for shape and sanity and against the in-memory serving."""
    import tensorflow as tf

    from kerasapps.savedmodel.export import run_serving, serving_function
    from kerasapps.training import checkpoints

    recipe = kerasapps.get_recipe(name)
    source = str(real_tables["wine"]) if recipe.task == "tabular" else None  # no built-in set: a real table
    run = kerasapps.train(name, data=source, run_dir=tmp_path / "run", data_dir=recipe_data_dir, smoke=True,
                          verbose=0)
    assert all(np.isfinite(v) for v in run.metrics["test"].values())
    evaluation = kerasapps.evaluate(run.run_dir, data_dir=recipe_data_dir)
    assert evaluation["metrics"] == pytest.approx(run.metrics["test"], rel=1e-5, abs=1e-6)
    if "classes" in evaluation:  # a classifier: its classes' supports are the test split's labels
        classes = evaluation["classes"]
        assert sum(r["support"] for r in classes["per_class"]) == evaluation["examples"]
        if "accuracy" in run.metrics["test"]:  # Keras's accuracy and scikit-learn's, from the same answers
            assert classes["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-6)
    if name == "char_lm":  # the loss in bits: nats / ln 2
        assert evaluation["bits_per_character"] == pytest.approx(evaluation["metrics"]["loss"] / np.log(2))
    if name == "captioning_flickr8k":  # corpus BLEU of the export's captions for the images of the split
        captions = evaluation["captions"]
        assert captions["images"] >= 1 and all(0 <= captions[f"bleu{n}"] <= 1 for n in range(1, 5))
        assert all(example["caption"] for example in captions["examples"])
    path = kerasapps.export(run.run_dir, out=tmp_path / "models")
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    inputs = real_raw_inputs(recipe, recipe.resolve(), recipe_data_dir, serve.structured_input_signature[1], source)
    exported = serve(**inputs)
    count = next(iter(inputs.values())).shape[0]
    for key, value in exported.items():
        assert value.shape[0] == count, key
        if value.dtype == tf.string:
            assert all(text for text in value.numpy().tolist()), key
        elif key == "probabilities":
            np.testing.assert_allclose(value.numpy().sum(axis=-1), 1.0, rtol=1e-4)
        elif key == "probability":
            assert ((value.numpy() >= 0) & (value.numpy() <= 1)).all()
    model = checkpoints.load_model(run.run_dir / "model.keras", compile=False)
    signature = run_serving(recipe, run.run_dir).input_signature()[0]
    in_memory = serving_function(recipe, model, run_serving(recipe, run.run_dir))(
        inputs if isinstance(signature, dict) else next(iter(inputs.values())))
    assert set(exported) == set(in_memory)
    for key in exported:
        if exported[key].dtype == tf.string:
            assert exported[key].numpy().tolist() == in_memory[key].numpy().tolist()
        else:
            np.testing.assert_allclose(exported[key].numpy(), in_memory[key].numpy(), rtol=1e-5, atol=1e-6)
