"""TF Serving's :classify and :regress over REST, on a SavedModel with real classify and regress signatures."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

tf = pytest.importorskip("tensorflow")
pytest.importorskip("starlette")
pytest.importorskip("httpx2")

from starlette.testclient import TestClient  # noqa: E402

from kerasapps.serving.server import create_app  # noqa: E402

LABELS = [b"small", b"large"]


def export_classifier(path):
    """A tf.Example model with the three kinds of signature (TF1 builder, as estimators exported them):
    'serving_default' classify: feature x (float) -> scores [p(small), p(large)] with p(large) = sigmoid(x - 1)
    and classes ["small", "large"]; 'regress': -> outputs = 2x + bias (int64 feature 'bias', default 0);
    'predict': x float [None] -> y = x + 1 (a predict signature on the same graph)."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        features = v1.io.parse_example(serialized, {
            "x": v1.io.FixedLenFeature([], tf.float32),
            "bias": v1.io.FixedLenFeature([], tf.int64, default_value=0)})
        x = features["x"]
        large = tf.sigmoid(x - 1.0)
        scores = tf.stack([1.0 - large, large], axis=1)
        classes = tf.tile(tf.constant([LABELS]), [tf.shape(x)[0], 1])
        outputs = 2.0 * x + tf.cast(features["bias"], tf.float32)
        raw = v1.placeholder(tf.float32, [None], name="raw")
        utils = v1.saved_model.signature_def_utils
        build = v1.saved_model.utils.build_tensor_info
        signatures = {
            "serving_default": utils.classification_signature_def(serialized, classes, scores),
            "regress": utils.regression_signature_def(serialized, outputs),
            "predict": utils.predict_signature_def({"x": raw}, {"y": raw + 1.0}),
            "scores_only": utils.build_signature_def(
                {"inputs": build(serialized)}, {"scores": build(scores)}, "tensorflow/serving/classify"),
        }
        with v1.Session(graph=graph) as session:
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("classify") / "models"
    export_classifier(base / "examples" / "1")
    with TestClient(create_app(str(base), poll_interval_s=0)) as c:
        yield c


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_classify_answers_label_score_pairs(client):
    r = client.post("/v1/models/examples:classify", json={"examples": [{"x": 1.0}, {"x": 3.5}]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [[label for label, _ in row] for row in results] == [["small", "large"]] * 2
    for row, x in zip(results, (1.0, 3.5)):
        np.testing.assert_allclose([score for _, score in row], [1 - sigmoid(x - 1), sigmoid(x - 1)], rtol=1e-6)


def test_a_classify_signature_without_classes_gives_empty_labels(client):
    r = client.post("/v1/models/examples:classify", json={"signature_name": "scores_only", "examples": [{"x": 1.0}]})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [[["", 0.5], ["", 0.5]]]


def test_regress_with_a_context_merged_into_every_example(client):
    body = {"signature_name": "regress", "context": {"bias": 10}, "examples": [{"x": 1.0}, {"x": 2.5}]}
    r = client.post("/v1/models/examples:regress", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [12.0, 15.0]}
    r = client.post("/v1/models/examples:regress", json={"signature_name": "regress", "examples": [{"x": 1.0}]})
    assert r.json() == {"results": [2.0]}


@pytest.mark.parametrize("path, body, message", [
    ("/v1/models/examples:classify", {"signature_name": "regress", "examples": [{"x": 1.0}]},
     "Expected classification signature method_name to be tensorflow/serving/classify. "
     "Was: tensorflow/serving/regress"),
    ("/v1/models/examples:regress", {"examples": [{"x": 1.0}]},
     "Expected regression signature method_name to be tensorflow/serving/regress. "
     "Was: tensorflow/serving/classify"),
    ("/v1/models/examples:classify", {"signature_name": "predict", "examples": [{"x": 1.0}]},
     "Was: tensorflow/serving/predict"),
    ("/v1/models/examples:classify", {"instances": [1.0]}, "key 'examples' is expected"),
    ("/v1/models/examples:classify", {"examples": []}, "empty array"),
    ("/v1/models/examples:classify", {"examples": [{"x": [1.0, "a"]}]}, "Unexpected element type in feature: x"),
    ("/v1/models/examples:classify", {"examples": [{"x": None}]}, "unexpected JSON type: Null"),  # TF Serving's name
    ("/v1/models/examples:classify", {"examples": [[1.0]]}, "Example must be JSON object but got JSON Array"),
    ("/v1/models/examples:classify", {"examples": [{"y": 1.0}]}, "x"),  # the parse op names the missing feature
])
def test_wrong_kind_or_bad_examples_are_400(client, path, body, message):
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_predict_still_works_on_the_same_model(client):
    r = client.post("/v1/models/examples:predict", json={"signature_name": "predict", "instances": [1.0, 2.0]})
    assert r.status_code == 200 and r.json() == {"predictions": [2.0, 3.0]}
