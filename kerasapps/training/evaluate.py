"""Evaluate a finished run's final model on one split of its last stage's data: the recipe's own loss and
metrics (``model.evaluate``), and for a classifier or a regressor what it does example by example
(:mod:`kerasapps.training.scores`): per-class scores, the confusion matrix and the worst mistakes as pictures
(:mod:`kerasapps.training.evaluation_plots`), and each example's answer in ``predictions-SPLIT.csv``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kerasapps.core.errors import UsageError
from kerasapps.core.progress import keras_verbosity
from kerasapps.core.recipe import DataContext
from kerasapps.core.schema import SPLITS
from kerasapps.data.files import Examples, materialize
from kerasapps.data.pipelines import evaluation_dataset
from kerasapps.data.sources import load_splits
from kerasapps.data.splits import length, stage_splits
from kerasapps.training import evaluation_plots as plots
from kerasapps.training import rundir, scores
from kerasapps.training.checkpoints import load_model, recipe_objects
from kerasapps.training.losses import choose_loss, main_head, with_auxiliary_targets
from kerasapps.training.regularizers import apply_weight_penalties
from kerasapps.training.tta import with_tta

NO_BETTER_MARGIN = 0.01  # a classifier within a point of always answering its most frequent class, on accuracy
# and on balanced accuracy both, does no better than it


def evaluate(run_dir, *, split: str = "test", data_dir=None, data: str | None = None, verbose="auto") -> dict:
    """Evaluate a finished run's final model on ``split`` of its last stage; writes ``evaluation-SPLIT.json``.

    A classifier's result adds ``classes`` (:func:`kerasapps.training.scores.classifier_scores`), a regressor's
    ``regression``; both write ``predictions-SPLIT.csv`` (one row per example), a classifier also
    ``confusion_matrix-SPLIT.png`` and, for images and texts, ``mistakes-SPLIT.png`` (``files`` lists them).
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
    raw = splits
    splits = with_auxiliary_targets(choice.apply(splits), len(model.outputs))
    ds = evaluation_dataset(splits[split], batch_size=hp.batch_size, preprocess=recipe.preprocess, cache=False)
    metrics = model.evaluate(ds, return_dict=True, verbose=keras_verbosity(verbose))  # a bar on a terminal only
    out = {"recipe": recipe.name, "split": split, "examples": length(splits[split]),
           "metrics": {k: float(v) for k, v in metrics.items()}}
    out.update(_examples(run_dir, recipe, hp, model, ds, raw, split))
    if "classes" in out:  # beside the recipe's metrics, as training's last test line gives it
        out["metrics"]["balanced_accuracy"] = out["classes"]["balanced_accuracy"]
    if recipe.evaluation is not None:
        out.update(recipe.evaluation(model, stage_hp, raw[split], split, loaded.meta, out["metrics"]))
    rundir.write_json(run_dir / f"evaluation-{split}.json", out)
    return out


def _examples(run_dir: Path, recipe, hp, model, ds, splits, split: str) -> dict:
    """A classifier's or regressor's answers example by example: the scores, the pictures, the answers' table."""
    units, activation = main_head(model)
    x, y = splits[split]
    if units is None or np.asarray(y).ndim != 1:
        return {}
    found = _answers(model, ds, y, units, activation)
    if found is None:
        return {}
    sources = [str(p) for p in x.paths] if isinstance(x, Examples) else [f"{split}[{i}]" for i in range(len(y))]
    train_y = splits["train"][1] if "train" in splits else None
    files = {"predictions": f"predictions-{split}.csv"}
    if found.kind == "values":
        _write_rows(run_dir / files["predictions"], scores.answer_rows(found, sources, None))
        return {"regression": scores.regression_scores(found, train_y), "files": files}
    path = run_dir / rundir.DATA
    names = class_names(recipe, hp, rundir.read_json(path) if path.is_file() else {}, units if units > 1 else 2)
    out = scores.classifier_scores(found, names, train_y)
    _write_rows(run_dir / files["predictions"], scores.answer_rows(found, sources, names))
    title = f"{recipe.name}, {split} split ({len(y)} examples)"
    if len(names) <= plots.MAX_PICTURED:
        files["confusion_matrix"] = plots.confusion_matrix_png(
            out["confusion_matrix"], names, run_dir / f"confusion_matrix-{split}.png", title).name
    worst = scores.worst_mistakes(found)
    out["worst_mistakes"] = [{"index": i, "source": sources[i], "true": names[found.y[i]],
                              "predicted": names[found.predicted[i]], "probability": float(found.confidence[i])}
                             for i in worst]
    shown = _shown(x, worst)
    if shown is not None:
        items = [{**mistake, shown[0]: value} for mistake, value in zip(out["worst_mistakes"], shown[1])]
        if shown[0] == "text":
            for mistake, value in zip(out["worst_mistakes"], shown[1]):
                mistake["text"] = (value.strip().splitlines() or [""])[0][:200]
        files["mistakes"] = plots.mistakes_png(items, run_dir / f"mistakes-{split}.png",
                                                  f"worst mistakes: {title}").name
    return {"classes": out, "files": files}


def class_check(plan, model) -> dict:
    """At the end of training, for a classifier: the test split's balanced accuracy (``test``), and the validation
    split's accuracy and balanced accuracy beside always answering the training split's most frequent class
    (``validation``; ``no_better`` where the model is within a point of it on both). {} for other models."""
    units, activation = main_head(model)
    if units is None or not all(np.asarray(y).ndim == 1 for _, y in plan.data.values()):
        return {}
    hp = plan.hp
    scored = with_tta(model, hp.tta) if hp.get("tta", "none") != "none" else model
    out = {}
    for split in ("validation", "test"):
        if split not in plan.data:
            continue
        ds = evaluation_dataset(plan.data[split], batch_size=plan.batch_size, preprocess=plan.recipe.preprocess,
                                cache=False)
        found = _answers(scored, ds, plan.data[split][1], units, activation)
        if found is None or found.kind != "classes":
            return {}
        names = class_names(plan.recipe, hp, plan.meta, found.probabilities.shape[1])
        got = scores.classifier_scores(found, names, plan.data["train"][1])
        if split == "test":
            out["test"] = {"balanced_accuracy": got["balanced_accuracy"]}
            continue
        majority = got["majority_class"]
        out["validation"] = {
            "accuracy": got["accuracy"], "balanced_accuracy": got["balanced_accuracy"],
            "majority_class": majority["class"], "majority_accuracy": majority["accuracy"],
            "majority_balanced_accuracy": majority["balanced_accuracy"],
            "no_better": bool(got["accuracy"] <= majority["accuracy"] + NO_BETTER_MARGIN
                              and got["balanced_accuracy"] <= majority["balanced_accuracy"] + NO_BETTER_MARGIN)}
    return out


def _answers(model, ds, y, units: int, activation: str):
    """The model's answers on ``ds`` (its main output's, where it has several) beside the targets ``y``."""
    outputs = model.predict(ds, verbose=0)
    return scores.answers(outputs[0] if isinstance(outputs, (list, tuple)) else outputs, y, units, activation)


def class_names(recipe, hp, record, count: int) -> list[str]:
    """The names of a classifier's ``count`` outputs, as its export returns them: the data's (``record``, a run's
    ``data.json``), the recipe's names or class ids, else the output indices."""
    serving = recipe.serving.configure(hp).for_data(record) if recipe.serving is not None else None
    names = serving.class_labels() if serving is not None else None
    if names is not None and len(names) == count:
        return [str(name) for name in names]
    return [str(i) for i in range(count)]


def _shown(x, indices: list[int]):
    """("image", uint8 arrays) or ("text", strings) of the examples at ``indices``; None for other inputs."""
    if isinstance(x, dict) or not indices:
        return None
    values = materialize(x[np.asarray(indices)])
    values = np.asarray(values)
    if values.dtype == object or values.dtype.kind in "SU":
        return "text", [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
    if values.dtype == np.uint8 and values.ndim in (3, 4):
        return "image", list(values)
    return None


def _write_rows(path: Path, rows: list[dict]) -> None:
    with rundir.atomic_path(path) as partial, partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        writer.writerows(rows)


def _check_classes(run_dir: Path, names) -> None:
    """Data whose classes are not the run's would be scored against the wrong outputs: refuse it."""
    path = run_dir / rundir.DATA
    trained = rundir.read_json(path).get("class_names") if path.is_file() else None
    if names is not None and trained is not None and list(names) != list(trained):
        raise UsageError(f"the data's classes ({', '.join(names)}) are not the ones {run_dir} was trained on "
                         f"({', '.join(trained)})")
