"""Evaluate a finished run's final model on one split of its last stage's data."""

from __future__ import annotations

from pathlib import Path

from kerasapps.core.errors import UsageError
from kerasapps.core.progress import keras_verbosity
from kerasapps.core.recipe import DataContext
from kerasapps.core.schema import SPLITS
from kerasapps.data.pipelines import evaluation_dataset
from kerasapps.data.sources import load_splits
from kerasapps.data.splits import length, stage_splits
from kerasapps.training import rundir
from kerasapps.training.checkpoints import load_model, recipe_objects
from kerasapps.training.losses import choose_loss, with_auxiliary_targets
from kerasapps.training.regularizers import apply_weight_penalties
from kerasapps.training.tta import with_tta


def evaluate(run_dir, *, split: str = "test", data_dir=None, data: str | None = None, verbose="auto") -> dict:
    """Evaluate a finished run's final model on ``split`` of its last stage; writes ``evaluation-SPLIT.json``.

    Without ``data_dir`` (and ``$KERASAPPS_DATA_DIR``) the data directory the run trained on is used;
    without ``data``, the ``--data`` source it trained on (its class names must match the run's).
    ``verbose`` is ``model.evaluate``'s; "auto" draws its progress bar only when stdout is a terminal.
    """
    recipe, hp, saved = rundir.open_run(run_dir)
    run_dir = Path(run_dir)
    if split not in SPLITS:
        raise UsageError(f"--split must be {', '.join(SPLITS[:-1])} or {SPLITS[-1]}; got {split!r}")
    model_path = rundir.final_model_path(run_dir)
    ctx = DataContext.from_option(rundir.recorded_data_dir(run_dir, data_dir), bool(saved.get("smoke", False)),
                                  data or saved.get("data"))
    loaded = load_splits(recipe, hp, ctx)
    _check_classes(run_dir, loaded.meta.get("class_names"))
    last = [stage for stage in recipe.stages if stage.runs(hp)][-1]  # the stage the final model finished
    splits = stage_splits(last, loaded)
    if split not in splits:
        raise UsageError(f"recipe {recipe.name!r} has no {split} split")
    model = load_model(model_path, custom_objects=recipe_objects(recipe))
    stage_hp = last.hparams(hp)
    apply_weight_penalties(model, stage_hp)  # not saved with the model: the loss counts them, as in training
    choice = choose_loss(recipe, stage_hp, model)
    if stage_hp.tta != "none":  # scored as the export answers: the mean over the image and its mirror
        model = with_tta(model, stage_hp.tta)
        model.compile(loss=choice.loss, metrics=list(recipe.metrics_for(stage_hp)), jit_compile=False)
    splits = with_auxiliary_targets(choice.apply(splits), len(model.outputs))
    ds = evaluation_dataset(splits[split], batch_size=hp.batch_size, preprocess=recipe.preprocess, cache=False)
    scores = model.evaluate(ds, return_dict=True, verbose=keras_verbosity(verbose))  # a bar on a terminal only
    result = {k: float(v) for k, v in scores.items()}
    out = {"recipe": recipe.name, "split": split, "examples": length(splits[split]), "metrics": result}
    rundir.write_json(run_dir / f"evaluation-{split}.json", out)
    return out


def _check_classes(run_dir: Path, names) -> None:
    """Data whose classes are not the run's would be scored against the wrong outputs: refuse it."""
    path = run_dir / rundir.DATA
    trained = rundir.read_json(path).get("class_names") if path.is_file() else None
    if names is not None and trained is not None and list(names) != list(trained):
        raise UsageError(f"the data's classes ({', '.join(names)}) are not the ones {run_dir} was trained on "
                         f"({', '.join(trained)})")
