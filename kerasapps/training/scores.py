"""What a model really does on a split, from its answers: per-class scores for classifiers, errors for
regressors, each example's answer, and its worst mistakes. The formulas are scikit-learn's.

:func:`answers` turns a model's outputs into each example's answer; :func:`classifier_scores` and
:func:`regression_scores` summarise them (``evaluation-SPLIT.json``); :func:`answer_rows` lists them one row per
example (``predictions-SPLIT.csv``) and :func:`worst_mistakes` picks the confident wrong ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

TOP_CONFUSIONS = 5
WORST_MISTAKES = 16


@dataclasses.dataclass
class Answers:
    """Each example's answer: ``kind`` "classes" (``probabilities`` [N, K], ``predicted`` class indices) or
    "values" (``predicted`` numbers [N])."""

    kind: str
    y: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray | None = None

    @property
    def confidence(self) -> np.ndarray:
        """The probability of each predicted class."""
        return self.probabilities[np.arange(len(self.predicted)), self.predicted]


def answers(outputs, y, units: int, activation: str) -> Answers | None:
    """Answers from a single-output model's ``outputs`` (its head: ``units`` and ``activation``) and the targets
    ``y``; None where they are neither classes nor one value per example (sequences, characters)."""
    outputs, y = np.asarray(outputs), np.asarray(y)
    if y.ndim != 1 or outputs.ndim != 2 or len(outputs) != len(y):
        return None
    if np.issubdtype(y.dtype, np.integer) and activation == "softmax" and units > 1:
        return Answers("classes", y, outputs.argmax(axis=1), outputs.astype("float64"))
    if np.issubdtype(y.dtype, np.integer) and activation == "sigmoid" and units == 1:
        positive = outputs[:, 0].astype("float64")
        return Answers("classes", y, (positive >= 0.5).astype(np.int64), np.stack([1 - positive, positive], axis=1))
    if np.issubdtype(y.dtype, np.floating) and units == 1:
        return Answers("values", y.astype("float64"), outputs[:, 0].astype("float64"))
    return None


def classifier_scores(found: Answers, names: Sequence[str], train_labels=None) -> dict:
    """Accuracy, balanced accuracy, macro F1, per-class precision/recall/F1/support, the confusion matrix (rows:
    true class, columns: predicted), the most frequent confusions, ROC and PR AUC for two classes, and the
    majority class of ``train_labels`` as the baseline every classifier must beat."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    labels = list(range(len(names)))
    y, predicted = found.y, found.predicted
    present = sorted(set(y.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    matrix = confusion_matrix(y, predicted, labels=labels)
    confusions = sorted(((int(matrix[t, p]), t, p) for t in labels for p in labels if t != p and matrix[t, p]),
                        key=lambda c: (-c[0], c[1], c[2]))[:TOP_CONFUSIONS]
    out = {
        "accuracy": float(accuracy_score(y, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
        "macro_f1": float(f1_score(y, predicted, labels=present, average="macro", zero_division=0)),
        "class_names": list(names),
        "per_class": [{"class": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i])} for i in labels],
        "confusion_matrix": matrix.tolist(),
        "top_confusions": [{"true": names[t], "predicted": names[p], "count": count} for count, t, p in confusions],
    }
    if len(names) == 2 and len(present) == 2:  # the second class is the positive one, as scikit-learn takes it
        out["positive_class"] = names[1]
        out["roc_auc"] = float(roc_auc_score(y, found.probabilities[:, 1]))
        out["pr_auc"] = float(average_precision_score(y, found.probabilities[:, 1]))
    if train_labels is not None and len(train_labels):
        majority = int(np.bincount(np.asarray(train_labels, np.int64), minlength=len(names)).argmax())
        out["majority_class"] = {"class": names[majority], "accuracy": float(np.mean(y == majority)),
                                 "balanced_accuracy": float(balanced_accuracy_score(y, np.full_like(y, majority)))}
    return out


def regression_scores(found: Answers, train_targets=None) -> dict:
    """MAE, RMSE and R², the residuals' (answer - target) quantiles, and the training mean as the baseline."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    residuals = found.predicted - found.y
    out = {"mae": float(mean_absolute_error(found.y, found.predicted)),
           "rmse": float(np.sqrt(mean_squared_error(found.y, found.predicted))),
           "r2": float(r2_score(found.y, found.predicted)) if len(found.y) > 1 else float("nan"),
           "residuals": {name: float(np.quantile(residuals, q)) for name, q in
                         (("min", 0), ("p05", 0.05), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p95", 0.95),
                          ("max", 1))} if len(residuals) else {}}
    if train_targets is not None and len(train_targets):
        mean = float(np.mean(train_targets))
        out["training_mean"] = {"value": mean, "mae": float(mean_absolute_error(found.y, np.full_like(found.y, mean)))}
    return out


def answer_rows(found: Answers, sources: Sequence[str], names: Sequence[str] | None) -> list[dict]:
    """One row per example: its index, source, target and answer (classes: the answer's probability and the true
    class's; values: the residual)."""
    if found.kind == "values":
        return [{"index": i, "source": sources[i], "true": float(t), "predicted": float(p), "residual": float(p - t)}
                for i, (t, p) in enumerate(zip(found.y, found.predicted))]
    confidence = found.confidence
    truth = found.probabilities[np.arange(len(found.y)), np.clip(found.y, 0, found.probabilities.shape[1] - 1)]
    return [{"index": i, "source": sources[i], "true": names[t], "predicted": names[p],
             "probability": round(float(c), 6), "probability_of_true": round(float(q), 6)}
            for i, (t, p, c, q) in enumerate(zip(found.y, found.predicted, confidence, truth))]


def worst_mistakes(found: Answers, count: int = WORST_MISTAKES) -> list[int]:
    """The indices of the wrong answers given with the highest probability, most confident first."""
    wrong = np.flatnonzero(found.predicted != found.y)
    order = np.argsort(-found.confidence[wrong], kind="stable")
    return wrong[order][:count].tolist()
