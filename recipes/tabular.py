"""``mlp_tabular``: the multilayer perceptron on a table of your own (``--data TABLE.csv`` or ``.jsonl``).

Every column but the label (``label_column``) is a feature: a column whose values all parse as numbers
is numeric, standardised inside the model by a Keras ``Normalization`` layer adapted on the training
split; any other column is categorical, one-hot encoded by ``StringLookup`` over its training values
(an unseen value gets the out-of-vocabulary slot). ``objective=classification`` (default) predicts the
label column's values as classes (softmax; accuracy); ``objective=regression`` predicts its number
(mean squared error; mean absolute error and root mean squared error; ``--set loss=`` takes any
regression loss, mean absolute percentage error included). The export takes the raw columns as named
inputs (float32 for numeric, string for categorical, shape [N] each; a column's input is its name with
characters other than letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``) and returns
``probabilities``, ``class_ids`` and ``classes`` (the label values), or ``prediction``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import Recipe, Serving, Splits
from kerasapps.data.splits import class_names, split_off
from kerasapps.data.tables import column, input_name, read_table, split_files

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes

OBJECTIVES = ("classification", "regression")
# what `kerasapps info` builds the model with, no table being loaded
PLACEHOLDER = [{"name": "feature", "input": "feature", "kind": "numeric", "mean": 0.0, "variance": 1.0}]


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def describe_columns(train: dict[str, list], label: str) -> list[dict]:
    """Each feature column's kind, with what its layer is adapted to: mean and variance, or the vocabulary."""
    columns = []
    for name, values in train.items():
        if name == label:
            continue
        numbers = [_number(v) for v in values]
        spec = {"name": name, "input": input_name(name)}
        if all(n is not None for n in numbers):
            array = np.array(numbers, np.float64)
            variance = float(array.var())  # a column constant in training is centred, not scaled: a value it
            # never took (a digit's always-blank corner pixel inked in a test row) then stays a few units away,
            # where dividing by a variance of ~0 put it at 1e7 (scikit-learn's StandardScaler does the same)
            columns.append({**spec, "kind": "numeric", "mean": float(array.mean()),
                            "variance": variance if variance > 1e-12 else 1.0})
        else:
            columns.append({**spec, "kind": "categorical", "vocabulary": sorted({str(v) for v in values})})
    inputs = [c["input"] for c in columns]
    if len(set(inputs)) != len(inputs):
        raise DataError(f"two columns map to one input name ({', '.join(sorted(inputs))}); rename them")
    if not columns:
        raise DataError(f"the table has no feature columns besides the label column {label!r}")
    return columns


def _inputs(table: dict[str, list], columns: list[dict]) -> dict[str, np.ndarray]:
    out = {}
    for spec in columns:
        values = table[spec["name"]]
        if spec["kind"] == "numeric":
            numbers = [_number(v) for v in values]
            if any(n is None for n in numbers):
                bad = next(v for v, n in zip(values, numbers) if n is None)
                raise DataError(f"column {spec['name']!r} is numeric in training but holds {bad!r} here")
            out[spec["input"]] = np.array(numbers, np.float32)
        else:
            out[spec["input"]] = np.array([str(v) for v in values], dtype=object)
    return out


def load_tabular(hp, ctx) -> Splits:
    if not ctx.source:
        raise DataError("mlp_tabular trains on a table of yours: pass --data TABLE.csv (or .jsonl)")
    path = Path(ctx.source).expanduser()
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise DataError(f"mlp_tabular takes a .csv or .jsonl table; --data {ctx.source} is not one")
    files = split_files(path)
    tables = {split: read_table(file) for split, file in files.items()}
    columns = describe_columns(tables["train"], hp.label_column)
    labels = {split: column(table, hp.label_column, files[split], "label") for split, table in tables.items()}
    names = class_names(labels, path, f"value(s) in the label column {hp.label_column!r}",
                        " (or --set objective=regression)") if hp.objective == "classification" else None
    splits = {}
    for split, table in tables.items():
        labels = column(table, hp.label_column, files[split], "label")
        if names is not None:
            y = np.array([names.index(str(v)) for v in labels], np.int64)
        else:
            numbers = [_number(v) for v in labels]
            if any(n is None for n in numbers):
                raise DataError(f"--data {files[split]}: objective=regression needs numbers in {hp.label_column!r}")
            y = np.array(numbers, np.float32)
        splits[split] = (_inputs(table, columns), y)
    result = Splits(splits, meta={"columns": columns, "class_names": names, "source": str(path)})
    if "test" not in result:
        result["train"], result["test"] = split_off(result["train"], hp.test_split, hp.seed, salt=104729)
    return result


def tabular_mlp(columns: list[dict], *, outputs: int, units: int = 64, depth: int = 2, dropout: float = 0.1,
                name: str = "mlp_tabular"):
    """Named raw columns -> ``predictions``: numeric columns standardised, categorical ones one-hot, an MLP.

    ``outputs`` > 1: softmax over that many classes; 1: a linear regression output.
    """
    inputs, encoded = {}, []
    for spec in columns:
        key = spec["input"]
        if spec["kind"] == "numeric":
            inputs[key] = keras.Input(shape=(), dtype="float32", name=key)
            values = keras.layers.Reshape((1,), name=f"{key}_column")(inputs[key])
            encoded.append(keras.layers.Normalization(mean=[spec["mean"]], variance=[spec["variance"]],
                                                      name=f"{key}_standardise")(values))
        else:
            inputs[key] = keras.Input(shape=(), dtype="string", name=key)
            encoded.append(keras.layers.StringLookup(vocabulary=spec["vocabulary"], output_mode="one_hot",
                                                     name=f"{key}_one_hot")(inputs[key]))
    x = keras.layers.Concatenate(name="features")(encoded) if len(encoded) > 1 else encoded[0]
    for i in range(1, depth + 1):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    head = keras.layers.Dense(outputs, activation="softmax" if outputs > 1 else None, name="predictions")(x)
    return keras.Model(inputs, head, name=name)


def build_tabular(hp, meta):
    names = meta.get("class_names")
    outputs = 1 if hp.objective == "regression" else len(names or ()) or 2
    return tabular_mlp(meta.get("columns") or PLACEHOLDER, outputs=outputs, units=hp.units, depth=hp.depth,
                       dropout=hp.dropout)


def objective(hp):
    if hp.objective == "regression":
        return "mean_squared_error", ("mean_absolute_error", "root_mean_squared_error")
    return "sparse_categorical_crossentropy", ("accuracy",)


class TableSignature(Serving):
    """The table's raw feature columns, named, [N] each (float32 numeric, string categorical) ->
    ``probabilities`` [N, K], ``class_ids`` [N] int64 and ``classes`` [N] string (classification), or
    ``prediction`` [N] float32 (regression)."""

    def __init__(self, columns=None, class_names=None):
        self.columns = list(columns or PLACEHOLDER)
        self.class_names = tuple(class_names) if class_names else None

    def for_data(self, record):
        if not record.get("columns"):
            return self
        return TableSignature(record["columns"], record.get("class_names"))

    def input_signature(self) -> list:
        import tensorflow as tf

        return [{spec["input"]: tf.TensorSpec((None,), tf.float32 if spec["kind"] == "numeric" else tf.string,
                                               name=spec["input"]) for spec in self.columns}]

    def outputs(self, model, preprocess, raw) -> dict:
        import tensorflow as tf

        from kerasapps.savedmodel.signatures import class_outputs

        scores = model(raw, training=False)
        if self.class_names is None and scores.shape[-1] == 1:
            return {"prediction": tf.reshape(scores, [-1])}
        return {"probabilities": scores, **class_outputs(tf.argmax(scores, axis=-1), class_names=self.class_names)}

    def describe(self) -> str:
        named = ", ".join(f"{c['input']} {'float32' if c['kind'] == 'numeric' else 'string'}" for c in self.columns)
        answer = (f"probabilities [N, K], class_ids [N] int64, classes [N] string ({', '.join(self.class_names)})"
                  if self.class_names else "prediction [N] float32 (regression) or probabilities, class_ids, classes")
        return f"{named}: [N] each -> {answer}"


MLP_TABULAR = Recipe(
    name="mlp_tabular",
    summary="Multilayer perceptron on your own table (--data TABLE.csv): classification or regression",
    build_model=build_tabular,
    load_data=load_tabular,
    hparams={
        "objective": HParam("classification", str, "predict the label column as classes, or as a number",
                            choices=OBJECTIVES),
        "units": HParam(64, int, "units per hidden layer", minimum=1),
        "depth": HParam(2, int, "hidden layers", minimum=1),
        "dropout": HParam(0.1, float, "dropout after each hidden layer", minimum=0.0, maximum=0.9),
    },
    # chosen on the validation splits of scikit-learn's breast cancer, wine, digits and diabetes tables, 3 seeds
    # each (benchmarks/choose_defaults.py; the settings and scores are in the README): epochs follow the table's
    # size (65,000 examples: 50 epochs of digits' 1,300 rows, the most at 200) and stop early on validation loss,
    # patiently: a small table's validation split (14-143 rows) is noisy, and patience 10 often stopped at the
    # 2nd-5th epoch (patience 20: breast cancer 0.9783 against 0.9739 over 5 seeds, the other tables level)
    defaults={"epochs": "auto", "auto_examples": 65_000, "max_epochs": 200, "early_stopping": True,
              "early_stopping_patience": 20, "batch_size": 32, "learning_rate": 3e-3, "lr_schedule": "cosine"},
    objective=objective,
    serving=TableSignature(),
    task="tabular",
    data="your own .csv or .jsonl table (--data); no built-in set",
    reference="a feed-forward network on tabular data (cf. Ludwig's tabular models); features standardised or "
              "one-hot",
)

RECIPES = [MLP_TABULAR]
