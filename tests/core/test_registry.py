import os
import subprocess
import sys
import textwrap

import pytest

import kerasapps
from kerasapps.core.errors import RecipeNotFound
from kerasapps.core.recipe import Recipe
from kerasapps.core.registry import REGISTRY, Registry, RegistryError


def _recipe(name):
    return Recipe(name=name, summary="s", build_model=lambda hp, meta: None, load_data=lambda hp, ctx: {})


def test_two_recipes_with_one_name_name_both_sources():
    registry = Registry(load_entry_points=False)
    registry.register(_recipe("alpha"), "pkg-one")
    with pytest.raises(RegistryError, match="'alpha': one from pkg-one, one from pkg-two"):
        registry.register(_recipe("alpha"), "pkg-two")


def test_unknown_recipe_suggests_close_names():
    with pytest.raises(RecipeNotFound) as info:
        REGISTRY.get("mnist_transfr")
    assert "did you mean mnist_transfer" in str(info.value)


def test_our_recipes_come_through_the_entry_point_group():
    assert "mnist_transfer" in REGISTRY.names()
    assert REGISTRY.source("mnist_transfer").startswith("kerasapps (entry point mnist_transfer")


def test_recipe_validates_its_declaration():
    with pytest.raises(ValueError, match="redeclares common"):
        from kerasapps.core.hparams import HParam

        Recipe(name="x", summary="", build_model=None, load_data=None, hparams={"epochs": HParam(1, int)})
    with pytest.raises(ValueError, match="recipe name"):
        _recipe("has space")


EXTERNAL = textwrap.dedent('''
    """A recipe shipped by another distribution, registered through the entry point group."""
    import keras
    from kerasapps.core.recipe import Recipe
    from kerasapps.savedmodel.signatures import ImageClassifier
    from kerasapps.data.builtin import load_mnist
    from kerasapps.recipes.mnist_transfer import preprocess

    def build(hp, meta):
        inputs = keras.Input((28, 28, 1))
        x = keras.layers.Flatten()(inputs)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="predictions")(x))

    RECIPES = [Recipe(name="ext_softmax", summary="external softmax regression", build_model=build,
                      load_data=load_mnist, preprocess=preprocess, serving=ImageClassifier(28, 28))]
''')


def _install_external(tmp_path, recipe_module: str, entry: str):
    """pip-install a tiny distribution that declares kerasapps.recipes, into a target folder."""
    project = tmp_path / "ext_project"
    (project / "ext_recipes").mkdir(parents=True)
    (project / "ext_recipes" / "__init__.py").write_text(recipe_module)
    (project / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "ext-recipes"
        version = "0.1"
        [project.entry-points."kerasapps.recipes"]
        {entry}
    '''))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(project)], check=True, capture_output=True)
    return {**os.environ, "PYTHONPATH": str(target)}


def _kerasapps(env, *args):
    return subprocess.run([sys.executable, "-m", "kerasapps.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_external_distribution_registers_and_trains(tmp_path, tiny_data_dir):
    env = _install_external(tmp_path, EXTERNAL, 'ext = "ext_recipes:RECIPES"')
    listing = _kerasapps(env, "list")
    assert listing.returncode == 0, listing.stderr
    assert "ext_softmax" in listing.stdout and "[ext-recipes]" in listing.stdout
    assert "mnist_transfer" in listing.stdout
    run = _kerasapps(env, "train", "ext_softmax", "--smoke", "--data-dir", str(tiny_data_dir),
                     "--run-dir", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "run" / "model.keras").is_file()


@pytest.mark.slow
def test_a_name_two_packages_claim_breaks_only_that_name(tmp_path):
    module = EXTERNAL.replace('name="ext_softmax"', 'name="mnist_transfer"')
    env = _install_external(tmp_path, module, 'clash = "ext_recipes:RECIPES"')
    listing = _kerasapps(env, "list")
    assert listing.returncode == 0, listing.stderr
    assert "mlp_mnist" in listing.stdout and "mnist_transfer" not in listing.stdout
    warnings = listing.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning: two recipes are named 'mnist_transfer'")
    assert "ext-recipes" in warnings[0] and "kerasapps (entry point" in warnings[0]
    used = _kerasapps(env, "info", "mnist_transfer")
    assert used.returncode == 1
    lines = [line for line in used.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "two recipes are named 'mnist_transfer'" in lines[0]


@pytest.mark.slow
def test_an_entry_point_that_yields_no_recipes_is_skipped_naming_its_package(tmp_path):
    env = _install_external(tmp_path, "RECIPES = ['not a recipe']\n", 'odd = "ext_recipes:RECIPES"')
    listing = _kerasapps(env, "list")
    assert listing.returncode == 0 and "mnist_transfer" in listing.stdout
    warning = listing.stderr.strip()
    assert warning.startswith("warning: skipping recipes from ext-recipes") and "not a kerasapps Recipe" in warning


def test_build_model_receives_the_datas_meta(tmp_path):
    """build_model(hp, meta) is built from what load_data derived (here the class count); with no data
    loaded, meta is {}; a factory may ignore it."""
    import keras
    import numpy as np

    from kerasapps.core.recipe import Splits

    def load(hp, ctx):
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 3, 40)
        return Splits(train=(x, y), test=(x[:8], y[:8]), meta={"classes": int(y.max()) + 1})

    def build(hp, meta):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(meta.get("classes", 2), activation="softmax")(inputs))

    recipe = Recipe(name="meta_probe", summary="s", build_model=build, load_data=load)
    run = kerasapps.train(recipe, run_dir=tmp_path / "run", verbose=0, epochs=1, batch_size=8)
    from kerasapps.training import checkpoints

    assert checkpoints.load_model(run.run_dir / "model.keras", compile=False).output.shape[-1] == 3
    assert recipe.build(recipe.resolve()).output.shape[-1] == 2  # info: no data, no meta
    fixed = Recipe(name="fixed_probe", summary="s", build_model=lambda hp, meta: build(hp, {"classes": 5}),
                   load_data=load)
    assert fixed.build(fixed.resolve(), {"classes": 3}).output.shape[-1] == 5  # a factory may ignore the meta
