"""``mlp_tabular``: the multilayer perceptron on a table of your own (``--data TABLE.csv`` or ``.jsonl``).

Every column but the label (``label_column``) is a feature: a column whose values all parse as numbers
is numeric, standardised inside the model by a Keras ``Normalization`` layer adapted on the training
split; any other column is categorical, one-hot encoded by ``StringLookup`` over its training values
(an unseen value gets the out-of-vocabulary slot). In a numeric column, an empty cell, ``NA``, ``n/a``,
``nan``, ``null``, ``?`` or ``-`` (:data:`kerasapps.data.tables.MISSING`) is a missing value: the model
replaces it by the column's training median and, where training had missing cells, adds a missing indicator
feature (``MissingValues``); the export takes NaN as missing. A column of at least 90% numbers with a few
other strings is refused in one line naming them, never turned categorical; ``categorical_columns`` and
``numeric_columns`` override the inference. ``objective=classification`` (default) predicts the
label column's values as classes (softmax; accuracy); ``objective=regression`` predicts its number
(mean squared error; mean absolute error and root mean squared error; ``--set loss=`` takes any
regression loss, mean absolute percentage error included). The export takes the raw columns as named
inputs (float32 for numeric, string for categorical, shape [N] each; a column's input is its name with
characters other than letters, digits, ``_``, ``.`` and ``-`` replaced by ``_``) and returns
``probabilities``, ``class_ids`` and ``classes`` (the label values), or ``prediction``.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from kerasapps.core.errors import DataError
from kerasapps.core.hparams import HParam
from kerasapps.core.lazy import lazy_import
from kerasapps.core.recipe import Recipe, Serving, Splits
from kerasapps.data.sources import own_data
from kerasapps.data.splits import class_names, split_off, take
from kerasapps.data.tables import column, input_name, is_missing, number_or_nan, read_table, split_files, to_number

keras = lazy_import("keras")  # loaded when a model is built, not when the registry lists the recipes
log = logging.getLogger("kerasapps")
NUMERIC_SHARE = 0.9  # a column with at least this share of numbers among its other cells is refused, not categorical

OBJECTIVES = ("classification", "regression")
# what `kerasapps info` builds the model with, no table being loaded
PLACEHOLDER = [{"name": "feature", "input": "feature", "kind": "numeric", "mean": 0.0, "variance": 1.0}]


def names_in(text: str) -> list[str]:
    """``categorical_columns`` / ``numeric_columns``: column names separated by commas."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def describe_columns(train: dict[str, list], label: str, categorical=(), numeric=()) -> list[dict]:
    """Each feature column's kind, with what its layers are built from: mean, variance, median and the count of
    missing cells (numeric), or the vocabulary (categorical); ``categorical`` and ``numeric`` name columns whose
    kind is given rather than inferred."""
    named = [*categorical, *numeric]
    unknown = [name for name in named if name not in train or name == label]
    if unknown:
        raise DataError(f"categorical_columns / numeric_columns name {', '.join(map(repr, unknown))}, not feature "
                        f"columns of the table (its columns: {', '.join(train)})")
    if set(categorical) & set(numeric):
        raise DataError(f"{', '.join(sorted(set(categorical) & set(numeric)))}: named in both categorical_columns "
                        "and numeric_columns")
    columns = []
    for name, values in train.items():
        if name == label:
            continue
        spec = {"name": name, "input": input_name(name)}
        present = [v for v in values if not is_missing(v)]
        others = [v for v in present if number_or_nan(v) is None]
        if name in categorical or name not in numeric and (not present or len(others) > (1 - NUMERIC_SHARE) * len(
                present)):
            columns.append({**spec, "kind": "categorical", "vocabulary": sorted({str(v) for v in values})})
            continue
        if others:
            shown = ", ".join(repr(v) for v in list(dict.fromkeys(map(str, others)))[:3])
            why = "is named in numeric_columns" if name in numeric else \
                f"holds numbers in {len(present) - len(others)} of its {len(present)} filled cells"
            raise DataError(f"column {name!r} {why} but {len(others)} other value(s): {shown}; fix them, write them "
                            f"as missing (an empty cell, NA, n/a, nan, null, ? or -), or pass --set "
                            f"categorical_columns={name}")
        array = np.array([number_or_nan(v) for v in present], np.float64)
        variance = float(array.var())  # a column constant in training is centred, not scaled: a value it
        # never took (a digit's always-blank corner pixel inked in a test row) then stays a few units away,
        # where dividing by a variance of ~0 put it at 1e7 (scikit-learn's StandardScaler does the same)
        columns.append({**spec, "kind": "numeric", "mean": float(array.mean()),
                        "variance": variance if variance > 1e-12 else 1.0, "median": float(np.median(array)),
                        "missing": len(values) - len(present)})
    inputs = [c["input"] for c in columns]
    if len(set(inputs)) != len(inputs):
        raise DataError(f"two columns map to one input name ({', '.join(sorted(inputs))}); rename them")
    if not columns:
        raise DataError(f"the table has no feature columns besides the label column {label!r}")
    return columns


def report_columns(columns: list[dict], rows: int) -> None:
    """The kinds chosen, and each column's missing cells, in the run's log (before training starts)."""
    numeric = [c for c in columns if c["kind"] == "numeric"]
    categorical = [c["name"] for c in columns if c["kind"] == "categorical"]
    log.info(f"table columns: {len(numeric)} numeric, {len(categorical)} categorical"
             + (f" ({', '.join(categorical[:8])}{', ...' if len(categorical) > 8 else ''})" if categorical else ""))
    for spec in numeric:
        if spec.get("missing"):
            log.info(f"column {spec['name']!r}: {spec['missing']} of its {rows} training cells missing, filled with "
                     f"the median {spec['median']:g}, with a missing indicator")


def _inputs(table: dict[str, list], columns: list[dict]) -> dict[str, np.ndarray]:
    out = {}
    for spec in columns:
        values = table[spec["name"]]
        if spec["kind"] == "numeric":
            numbers = [number_or_nan(v) for v in values]  # a missing-value marker is NaN, the model fills it
            if any(n is None for n in numbers):
                bad = next(v for v, n in zip(values, numbers) if n is None)
                raise DataError(f"column {spec['name']!r} is numeric in training but holds {bad!r} here")
            out[spec["input"]] = np.array(numbers, np.float32)
        else:
            out[spec["input"]] = np.array([str(v) for v in values], dtype=object)
    return out


def load_tabular(hp, ctx) -> Splits:
    source = own_data(ctx)  # a table (load_splits refused any other kind)
    if source is None:
        raise DataError("mlp_tabular trains on a table of yours: pass --data TABLE.csv (or .jsonl)")
    path = source.path
    files = split_files(path)
    tables = {split: read_table(file) for split, file in files.items()}
    training, carve = tables["train"], None
    if "test" not in tables:  # the test rows, carved by a seeded permutation, are not looked at for the columns
        rows = np.arange(len(next(iter(training.values()))))
        carve = split_off(rows, hp.test_split, hp.seed, salt=104729)  # (kept rows, held rows or None)
        training = {name: [values[i] for i in carve[0]] for name, values in training.items()}
    columns = describe_columns(training, hp.label_column, names_in(hp.categorical_columns),
                               names_in(hp.numeric_columns))
    report_columns(columns, len(next(iter(training.values()))))
    labels = {split: column(table, hp.label_column, files[split], "label") for split, table in tables.items()}
    names = class_names(labels, path, f"value(s) in the label column {hp.label_column!r}",
                        " (or --set objective=regression)") if hp.objective == "classification" else None
    splits = {}
    for split, table in tables.items():
        labels = column(table, hp.label_column, files[split], "label")
        if names is not None:
            y = np.array([names.index(str(v)) for v in labels], np.int64)
        else:
            numbers = [to_number(v) for v in labels]
            if any(n is None for n in numbers):
                raise DataError(f"--data {files[split]}: objective=regression needs numbers in {hp.label_column!r}")
            y = np.array(numbers, np.float32)
        splits[split] = (_inputs(table, columns), y)
    result = Splits(splits, meta={"columns": columns, "class_names": names, "source": str(path)})
    if carve is not None:
        (kept, held), whole = carve, result["train"]
        result["train"], result["test"] = take(whole, kept), take(whole, held) if held is not None else None
    return result


def tabular_mlp(columns: list[dict], *, outputs: int, units: int = 64, depth: int = 2, dropout: float = 0.1,
                name: str = "mlp_tabular"):
    """Named raw columns -> ``predictions``: numeric columns standardised, categorical ones one-hot, an MLP.

    ``outputs`` > 1: softmax over that many classes; 1: a linear regression output.
    """
    from kerasapps.models.layers import MissingValues

    inputs, encoded = {}, []
    for spec in columns:
        key = spec["input"]
        if spec["kind"] == "numeric":
            inputs[key] = keras.Input(shape=(), dtype="float32", name=key)
            values = keras.layers.Reshape((1,), name=f"{key}_column")(inputs[key])
            values = keras.layers.Normalization(mean=[spec["mean"]], variance=[spec["variance"]],
                                                name=f"{key}_standardise")(values)
            if "median" in spec:  # NaN (missing) -> the training median; runs from before it kept NaN
                fill = (spec["median"] - spec["mean"]) / math.sqrt(spec["variance"])
                values = MissingValues(fill, indicator=spec["missing"] > 0, name=f"{key}_missing")(values)
            encoded.append(values)
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

    def class_labels(self):
        return self.class_names

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
        "categorical_columns": HParam("", str, "columns to one-hot whatever they hold (names, comma-separated)"),
        "numeric_columns": HParam("", str, "columns to read as numbers with missing values (names, "
                                           "comma-separated); a cell that is neither is refused"),
    },
    # chosen on the validation splits of scikit-learn's breast cancer, wine, digits and diabetes tables, 3 seeds
    # each (benchmarks/choose_defaults.py; the settings and scores are in the docs): epochs follow the table's
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
