"""``kerasapps info``: a recipe's hyper-parameters, data, stages, parameter count and layers."""

from __future__ import annotations

import io

from kerasapps.core.registry import REGISTRY


def recipe_info(name: str, *, build: bool = True) -> dict:
    recipe = REGISTRY.get(name)
    schema = recipe.schema()
    out = {
        "name": recipe.name,
        "summary": recipe.summary,
        "source": REGISTRY.source(name),
        "data": recipe.data,
        "reference": recipe.reference,
        "stages": [{"name": s.name, "summary": s.summary, "frozen": s.describe_freeze(), "overrides": dict(s.overrides)}
                   for s in recipe.stages],
        "serving": recipe.serving.configure(recipe.default_hparams()).describe() if recipe.serving else None,
        "hparams": [{"key": key, "type": spec.type_name, "default": spec.default, "help": spec.help,
                     **({"choices": list(spec.choices)} if spec.choices else {})}
                    for key, spec in schema.items()],
    }
    if build:
        model = recipe.build(recipe.default_hparams())  # no data loaded: no meta
        out["parameters"] = int(model.count_params())
        out["trainable_parameters"] = int(sum(int(v.numpy().size) for v in model.trainable_weights))
        buffer = io.StringIO()
        model.summary(print_fn=lambda line, *a, **k: buffer.write(line + "\n"), line_length=100)
        out["layers"] = [{"name": layer.name, "type": type(layer).__name__, "parameters": int(layer.count_params())}
                         for layer in model.layers]
        out["summary_text"] = buffer.getvalue()
    return out
