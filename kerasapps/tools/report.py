"""``kerasapps report RUN_DIR [RUN_DIR...]``: one self-contained HTML page about finished runs.

For each run: its configuration, the data (source, examples and class counts per split), the training curves of
its stages and their last epoch, and every evaluation written by ``kerasapps evaluate`` (metrics, per-class
table, most frequent confusions, regression errors, the confusion matrix and mistakes pictures, the worst
mistakes). For several runs, a table of the settings that differ between them and their scores, side by side.
Pictures are embedded (base64 PNG), nothing is fetched: the file can be mailed or attached as it is. A line at
the foot of the page counts the pictures the browser could show.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from kerasapps.core.errors import UsageError
from kerasapps.training import rundir

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: right; }
th { background: #eef; } td.text, th.text { text-align: left; }
.warn { background: #fee; border-left: 4px solid #c33; padding: .4em .8em; }
.note { color: #666; } img { max-width: 100%; border: 1px solid #ddd; margin: .4em 0; }
"""
SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var shown = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var foot = document.getElementById('pictures');
  foot.textContent = shown + ' of ' + images.length + ' pictures shown';
  foot.setAttribute('data-shown', shown);
  foot.setAttribute('data-total', images.length);
});
"""
SCORES = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "mae", "rmse", "r2")


def report(run_dirs: Sequence, out=None) -> Path:
    """Write the page for ``run_dirs`` (finished runs) to ``out`` (default: ``RUN_DIR/report.html`` for one run,
    ``report.html`` in the working directory for several); returns its path."""
    if not run_dirs:
        raise UsageError("give at least one run directory")
    runs = [_read(Path(path)) for path in run_dirs]
    out = Path(out) if out else (runs[0]["dir"] / "report.html" if len(runs) == 1 else Path("report.html"))
    title = (f"kerasapps report: {runs[0]['recipe']} ({runs[0]['dir'].name})" if len(runs) == 1 else
             f"kerasapps report: {len(runs)} runs")
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class='note'>written {_e(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>"]
    if len(runs) > 1:
        body += _side_by_side(runs)
    for run in runs:
        body += _run_section(run, several=len(runs) > 1)
    body.append("<p id='pictures' class='note'>pictures: not counted (scripts off)</p>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    with rundir.atomic_path(out) as partial:
        partial.write_text(page, encoding="utf-8")
    return out


def _read(path: Path) -> dict:
    if not (path / rundir.CONFIG).is_file():
        raise UsageError(f"{path} is not a run directory (no {rundir.CONFIG})")
    config = rundir.read_config(path)
    state = _json(path / rundir.STATE)
    return {"dir": path, "recipe": config.get("recipe", "?"), "config": config, "state": state,
            "data": _json(path / rundir.DATA), "metrics": _json(path / rundir.METRICS),
            "manifest": _json(path / rundir.MANIFEST),
            "evaluations": {p.stem.split("-", 1)[1]: _json(p) for p in sorted(path.glob("evaluation-*.json"))}}


def _json(path: Path) -> dict:
    """A run's JSON file, or {} where it is missing or unreadable (the page shows what there is)."""
    try:
        return rundir.read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return _e(value)


def _table(head: Sequence[str], rows: Sequence[Sequence], text_columns: int = 1) -> str:
    def cell(tag, i, value):
        return f"<{tag}{' class=text' if i < text_columns else ''}>{_number(value)}</{tag}>"

    return ("<table><tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>"
            + "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
            + "</table>")


def _picture(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p class='note'>{_e(path.name)} is missing</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _settings(config: dict) -> dict:
    """A run's configuration as one flat mapping: its hyper-parameters by name, beside ``recipe``, ``data``, ..."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({(k if key == "hparams" else f"{key}.{k}"): v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _chosen(run: dict) -> dict:
    """The settings of a run that are not its recipe's defaults (all of them where the recipe is not registered)."""
    settings = _settings(run["config"])
    try:
        from kerasapps.core.registry import REGISTRY

        defaults = dict(REGISTRY.get(run["recipe"]).default_hparams())
    except Exception:  # a recipe of a package not installed here: show everything
        return settings
    return {k: v for k, v in settings.items() if k in ("recipe", "data") or k not in defaults or defaults[k] != v}


def _scores(run: dict) -> dict:
    evaluation = run["evaluations"].get("test", {})
    classes, regression = evaluation.get("classes", {}), evaluation.get("regression", {})
    found = {k: classes[k] for k in SCORES if k in classes}
    found.update({k: regression[k] for k in SCORES if k in regression})
    if not found:  # not evaluated: the test metrics training wrote
        found = dict(run["metrics"].get("test") or {})
    return found


def _side_by_side(runs: list[dict]) -> list[str]:
    """One column per run: the test scores, then the settings that differ between the runs."""
    settings = [_settings(run["config"]) for run in runs]
    keys = sorted({k for s in settings for k in s})
    differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in settings}) > 1]
    scores = [_scores(run) for run in runs]
    names = [k for k in SCORES if any(k in s for s in scores)] or sorted({k for s in scores for k in s})
    rows = [["recipe", *[run["recipe"] for run in runs]]]
    rows += [[f"test {n}", *[sc.get(n, "") for sc in scores]] for n in names]
    rows += [[k, *[s.get(k, "-") for s in settings]] for k in differ if k != "recipe"]
    return ["<h2>The runs side by side</h2>",
            "<p class='note'>test scores (from <code>kerasapps evaluate</code> where it ran, else training's last "
            "test metrics), then the settings that differ between the runs</p>",
            _table(["", *[run["dir"].name for run in runs]], rows)]


def _run_section(run: dict, several: bool) -> list[str]:
    path, data = run["dir"], run["data"]
    out = [f"<h2>{_e(run['recipe'])}: {_e(path)}</h2>" if several else f"<h2>Run {_e(path)}</h2>"]
    status = run["state"].get("status", "unknown")
    manifest = run["manifest"]
    out.append(f"<p>status <b>{_e(status)}</b>; seed {_e(run['config'].get('seed', manifest.get('seed', '?')))}; "
               f"started {_e(manifest.get('started', '?'))}, finished {_e(manifest.get('finished', '-'))}</p>")
    out.append("<h3>Configuration</h3>")
    out.append("<p class='note'>the settings that differ from the recipe's defaults</p>")
    out.append(_table(["setting", "value"], sorted(_chosen(run).items()), text_columns=2))
    everything = sorted(_settings(run["config"]).items())
    out.append(f"<details><summary>all {len(everything)} settings</summary>"
               + _table(["setting", "value"], everything, text_columns=2) + "</details>")
    out += _data_section(data)
    out += _training_section(run)
    if not run["evaluations"]:
        out.append(f"<p class='warn'>not evaluated yet: <code>kerasapps evaluate {_e(path)}</code> writes the "
                   "per-class tables and pictures this page shows</p>")
    for split, evaluation in run["evaluations"].items():
        out += _evaluation_section(path, split, evaluation)
    return out


def _data_section(data: dict) -> list[str]:
    out = ["<h3>Data</h3>", f"<p>source: {_e(data.get('source', '?'))}</p>"]
    examples, names = data.get("examples", {}), data.get("class_names")
    counts = data.get("class_counts", {})
    if names and counts:
        splits = list(counts)
        rows = [[name, *[counts[s][i] if i < len(counts[s]) else 0 for s in splits]] for i, name in enumerate(names)]
        rows.append(["all", *[examples.get(s, sum(counts[s])) for s in splits]])
        out.append(_table(["class", *splits], rows))
    elif examples:
        out.append(_table(["split", "examples"], list(examples.items())))
    if data.get("columns"):
        rows = [[c["name"], c["kind"], c.get("missing", "")] for c in data["columns"]]
        out.append(_table(["column", "kind", "missing cells"], rows, text_columns=2))
    return out


def _training_section(run: dict) -> list[str]:
    path, stages = run["dir"], run["metrics"].get("stages", {})
    out = ["<h3>Training</h3>"]
    if (path / "training_curves.png").is_file():
        out.append(_picture(path / "training_curves.png", "training curves"))
    rows = []
    for name, stage in stages.items():
        last = _last_row(path / "logs" / f"{name}.csv")
        rows.append([name, stage.get("epochs", ""), stage.get("seconds", ""),
                     ", ".join(f"{k} {float(v):.4f}" for k, v in last.items() if k != "epoch" and v not in ("", None)),
                     ", ".join(f"{k} {v:.4f}" for k, v in (stage.get("test") or {}).items())])
    if rows:
        out.append(_table(["stage", "epochs", "seconds", "last epoch", "test"], rows, text_columns=1))
    check = list(stages.values())[-1].get("validation") if stages else None
    if check:
        line = (f"validation: accuracy {check['accuracy']:.4f}, balanced accuracy {check['balanced_accuracy']:.4f}; "
                f"always answering {check['majority_class']!r}: {check['majority_accuracy']:.4f}, "
                f"{check['majority_balanced_accuracy']:.4f}")
        out.append(f"<p class='{'warn' if check['no_better'] else 'note'}'>{_e(line)}"
                   + (" (no better than always answering it)" if check["no_better"] else "") + "</p>")
    return out


def _last_row(path: Path) -> dict:
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


def _evaluation_section(path: Path, split: str, evaluation: dict) -> list[str]:
    out = [f"<h3>Evaluation: the {_e(split)} split ({_e(evaluation.get('examples', '?'))} examples)</h3>",
           _table(["metric", "value"], list(evaluation.get("metrics", {}).items()))]
    classes, regression = evaluation.get("classes"), evaluation.get("regression")
    files = evaluation.get("files", {})
    if classes:
        majority = classes.get("majority_class")
        summary = [["accuracy", classes["accuracy"]], ["balanced accuracy", classes["balanced_accuracy"]],
                   ["macro F1", classes["macro_f1"]]]
        summary += [[f"{name.replace('_', ' ').upper()} (positive class {classes['positive_class']!r})", classes[name]]
                    for name in ("roc_auc", "pr_auc") if name in classes]
        if majority:
            summary += [[f"always answering {majority['class']!r}: accuracy", majority["accuracy"]],
                        [f"always answering {majority['class']!r}: balanced accuracy", majority["balanced_accuracy"]]]
        out.append(_table(["", "value"], summary))
        out.append(_table(["class", "precision", "recall", "F1", "support"],
                          [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
                           for r in classes["per_class"]]))
        if classes.get("top_confusions"):
            out.append(_table(["true class", "predicted", "count"],
                              [[c["true"], c["predicted"], c["count"]] for c in classes["top_confusions"]],
                              text_columns=2))
        if "confusion_matrix" in files:
            out.append(_picture(path / files["confusion_matrix"], f"confusion matrix, {split} split"))
        if "mistakes" in files:
            out.append("<h4>The worst mistakes</h4>")
            out.append(_picture(path / files["mistakes"], f"worst mistakes, {split} split"))
        mistakes = classes.get("worst_mistakes") or []
        if mistakes:
            out.append(_table(["example", "true", "predicted", "probability", "text"],
                              [[m["source"], m["true"], m["predicted"], m["probability"], m.get("text", "")]
                               for m in mistakes], text_columns=3))
    if regression:
        rows = [["MAE", regression["mae"]], ["RMSE", regression["rmse"]], ["R²", regression["r2"]]]
        if "training_mean" in regression:
            rows.append(["MAE of the training mean", regression["training_mean"]["mae"]])
        out.append(_table(["", "value"], rows))
        if regression.get("residuals"):
            out.append("<p>residuals (answer - target): "
                       + ", ".join(f"{k} {v:.3f}" for k, v in regression["residuals"].items()) + "</p>")
    captions = evaluation.get("captions")
    if captions:
        out.append(_table(["", "value"], [[f"BLEU-{n}", captions[f"bleu{n}"]] for n in range(1, 5)]
                          + [["images", captions["images"]], ["decoding", captions["decoding"]]]))
        out.append(_table(["image", "caption", "first reference"],
                          [[c["source"], c["caption"], (c["references"] or [""])[0]] for c in captions["examples"]],
                          text_columns=3))
    if "bits_per_character" in evaluation:
        out.append(f"<p>bits per character: {evaluation['bits_per_character']:.4f}</p>")
    if files.get("predictions"):
        out.append(f"<p class='note'>every example's answer: {_e(os.fspath(path / files['predictions']))}</p>")
    return out
