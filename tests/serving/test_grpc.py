"""Tests for kerasapps.serving.grpc_api: TF Serving's gRPC API, called with TF Serving's own client stubs."""

from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from serving_helpers import images, reference, write_image_model, write_spin_model, write_text_model  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from tensorflow.core.framework import tensor_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from kerasapps.serving import server  # noqa: E402

TIMEOUT = 60  # seconds for any one RPC (the first call of a model loads it)
CODE = grpc.StatusCode


# -- exports -----------------------------------------------------------------------------------------

export_image_model = write_image_model
export_text_model = write_text_model



WEIGHTS = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -0.5]], np.float32)
BIAS_DIRECTION = np.array([1.0, 0.0, -1.0], np.float32)  # how the bias feature moves each class's logit
LABELS = [b"cat", b"dog", b"emu"]
REGRESS_WEIGHTS = np.array([2.0, -1.0], np.float32)


def export_tf1_examples_model(path):
    """A TF1 SavedModel over serialized tf.Examples (features x: 2 floats, bias: 1 float, default 0):
    'serving_default' classify (classes and scores), 'scores_only' classify, 'regress' regress."""
    graph = tf.Graph()
    with graph.as_default():
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        features = tf.compat.v1.io.parse_example(serialized, {
            "x": tf.io.FixedLenFeature([2], tf.float32),
            "bias": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        x, bias = features["x"], features["bias"]
        scores = tf.nn.softmax(tf.matmul(x, tf.constant(WEIGHTS)) + bias * tf.constant(BIAS_DIRECTION))
        classes = tf.tile(tf.constant([LABELS]), [tf.shape(x)[0], 1])
        value = tf.reduce_sum(x * tf.constant(REGRESS_WEIGHTS), axis=1, keepdims=True) + bias
        utils = tf.compat.v1.saved_model.signature_def_utils
        signatures = {"serving_default": utils.classification_signature_def(serialized, classes, scores),
                      "scores_only": utils.classification_signature_def(serialized, None, scores),
                      "regress": utils.regression_signature_def(serialized, value)}
        with tf.compat.v1.Session(graph=graph) as session:
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("grpc") / "models"
    export_image_model(base / "mnist" / "1", seed=1)
    export_image_model(base / "mnist" / "2", seed=2)
    export_text_model(base / "text" / "1")
    export_tf1_examples_model(base / "census" / "3")
    write_spin_model(base / "spin" / "1")
    # TF Serving's model config: every mnist version served (the default policy serves the latest only).
    config = ["model_config_list {"]
    for name in ("mnist", "text", "census", "spin"):
        extra = ('model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
                 'version_labels { key: "canary" value: 2 }') if name == "mnist" else ""
        config.append(f'  config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" {extra} }}')
    config.append("}")
    (base / "models.config").write_text("\n".join(config) + "\n")
    return base


class Stubs:
    """TF Serving's own client stubs on one channel."""

    def __init__(self, port: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)


@contextlib.contextmanager
def grpc_server(model_base, **options):
    """The REST app with its gRPC port (a free one), running; yields the stubs."""
    app = server.create_app(str(model_base), poll_interval_s=0, grpc_port=0,
                            model_config_file=str(model_base / "models.config"), **options)
    with TestClient(app):
        port = app.state.grpc_port
        assert port, "the app did not start its gRPC server"
        stubs = Stubs(port)
        try:
            yield stubs
        finally:
            stubs.channel.close()


@pytest.fixture(scope="module")
def stubs(model_base):
    with grpc_server(model_base) as s:
        yield s


def predict_request(name="mnist", inputs=None, *, version=None, label=None, signature=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature is not None:
        request.model_spec.signature_name = signature
    for key, value in (inputs or {}).items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        request.inputs[key].CopyFrom(proto)
    request.output_filter.extend(output_filter)
    return request


def outputs_of(response) -> dict:
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def expect_error(call, request, code, *fragments, timeout=TIMEOUT) -> str:
    """Call and check the RPC fails with ``code`` and details holding each fragment; returns the details."""
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=timeout)
    error = info.value
    assert error.code() == code, (error.code(), error.details())
    for fragment in fragments:
        assert fragment in error.details(), error.details()
    return error.details()


# -- Predict ------------------------------------------------------------------------------------------

def test_predict_equals_the_savedmodel_call(stubs, model_base):
    x = images(3, seed=1)
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}), timeout=TIMEOUT)
    assert response.model_spec.name == "mnist"
    assert response.model_spec.version.value == 2  # the latest
    assert response.model_spec.signature_name == "serving_default"
    got, want = outputs_of(response), reference(model_base, "mnist", 2, {"images": x})
    assert set(got) == {"probabilities", "classes"}
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape
        np.testing.assert_array_equal(got[key], want[key])
    # The typed value fields, as TF Serving writes them (clients read .float_val, .int64_val).
    probabilities = response.outputs["probabilities"]
    assert not probabilities.tensor_content
    assert [d.size for d in probabilities.tensor_shape.dim] == [3, 10]
    np.testing.assert_array_equal(np.array(probabilities.float_val, np.float32), want["probabilities"].ravel())
    assert list(response.outputs["classes"].int64_val) == want["classes"].tolist()
    # A larger request (converted off the event loop) answers the same.
    x = images(120, seed=4)
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}), timeout=TIMEOUT)
    np.testing.assert_array_equal(outputs_of(response)["probabilities"],
                                  reference(model_base, "mnist", 2, {"images": x})["probabilities"])


def test_predict_accepts_values_in_typed_fields(stubs, model_base):
    x = images(2, seed=5)
    proto = tensor_pb2.TensorProto(dtype=tf.uint8.as_datatype_enum)
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=28)
    proto.tensor_shape.dim.add(size=28)
    proto.int_val.extend(x.ravel().tolist())
    response = stubs.prediction.Predict(predict_request(inputs={"images": proto}), timeout=TIMEOUT)
    np.testing.assert_array_equal(outputs_of(response)["probabilities"],
                                  reference(model_base, "mnist", 2, {"images": x})["probabilities"])


def test_version_pinning_and_not_found(stubs, model_base):
    x = images(2, seed=2)
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}, version=1), timeout=TIMEOUT)
    assert response.model_spec.version.value == 1
    np.testing.assert_array_equal(outputs_of(response)["probabilities"],
                                  reference(model_base, "mnist", 1, {"images": x})["probabilities"])
    v2 = reference(model_base, "mnist", 2, {"images": x})["probabilities"]
    assert not np.array_equal(outputs_of(response)["probabilities"], v2)
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}, label="stable"), timeout=TIMEOUT)
    assert response.model_spec.version.value == 1
    np.testing.assert_array_equal(outputs_of(response)["probabilities"],
                                  reference(model_base, "mnist", 1, {"images": x})["probabilities"])
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}, label="canary"), timeout=TIMEOUT)
    assert response.model_spec.version.value == 2
    expect_error(stubs.prediction.Predict, predict_request(inputs={"images": x}, label="nolabel"),
                 CODE.INVALID_ARGUMENT, "Unrecognized servable version label: nolabel")
    expect_error(stubs.prediction.Predict, predict_request(inputs={"images": x}, version=7), CODE.NOT_FOUND,
                 "mnist")
    expect_error(stubs.prediction.Predict, predict_request("nosuchmodel", {"images": x}), CODE.NOT_FOUND,
                 "nosuchmodel")
    expect_error(stubs.prediction.Predict, predict_request("../mnist", {"images": x}), CODE.INVALID_ARGUMENT)
    request = predict_pb2.PredictRequest()
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
    expect_error(stubs.prediction.Predict, request, CODE.INVALID_ARGUMENT, "Missing ModelSpec")


def test_signature_name_and_output_filter(stubs, model_base):
    x = images(4, seed=3)
    want = reference(model_base, "mnist", 2, {"images": x})
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}, signature="classes_only"),
                                        timeout=TIMEOUT)
    assert response.model_spec.signature_name == "classes_only"
    assert set(response.outputs) == {"classes"}
    np.testing.assert_array_equal(outputs_of(response)["classes"], want["classes"])
    response = stubs.prediction.Predict(predict_request(inputs={"images": x}, output_filter=["classes"]),
                                        timeout=TIMEOUT)
    assert set(response.outputs) == {"classes"}
    np.testing.assert_array_equal(outputs_of(response)["classes"], want["classes"])
    expect_error(stubs.prediction.Predict, predict_request(inputs={"images": x}, output_filter=["logits"]),
                 CODE.INVALID_ARGUMENT, "output tensor alias not found in signature: logits",
                 "{classes,probabilities}")
    expect_error(stubs.prediction.Predict,
                 predict_request(inputs={"images": x}, output_filter=["classes", "classes"]),
                 CODE.INVALID_ARGUMENT, "duplicate output tensor alias: classes")
    expect_error(stubs.prediction.Predict, predict_request(inputs={"images": x}, signature="nope"),
                 CODE.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')


def test_bad_inputs_are_invalid_argument(stubs):
    call = stubs.prediction.Predict
    expect_error(call, predict_request(inputs={"images": images(2).astype(np.float32)}), CODE.INVALID_ARGUMENT,
                 "Expects arg 'images' to be uint8 but float32 is provided")
    expect_error(call, predict_request(inputs={"images": np.zeros((2, 28), np.uint8)}), CODE.INVALID_ARGUMENT,
                 "Input 'images' has shape [2, 28], but the signature expects [-1, 28, 28]")
    expect_error(call, predict_request(inputs={"pixels": images(1)}), CODE.INVALID_ARGUMENT,
                 "Signature input alias: images(feed name: serving_default_images:0) not found in request",
                 "Inputs expected to be in the request {pixels}")
    expect_error(call, predict_request(inputs={"images": images(1), "extra": images(1)}), CODE.INVALID_ARGUMENT,
                 "input size does not match signature: 2!=1", "Sent extra: {extra}")
    expect_error(call, predict_request(inputs={}), CODE.INVALID_ARGUMENT,
                 "input size does not match signature: 0!=1", "Missing but required: {images}")
    # tensor_content that does not fill the declared shape
    proto = tf.make_tensor_proto(images(2))
    proto.tensor_shape.dim[0].size = 3
    expect_error(call, predict_request(inputs={"images": proto}), CODE.INVALID_ARGUMENT,
                 "tensor parsing error: images")
    proto.tensor_shape.dim[0].size = -2
    expect_error(call, predict_request(inputs={"images": proto}), CODE.INVALID_ARGUMENT,
                 "tensor parsing error: images")


def test_element_count_is_refused_before_allocating(stubs):
    # 2**40 x 28 x 28 bytes declared with no values: converting it would try to allocate ~800 TB.
    proto = tensor_pb2.TensorProto(dtype=tf.uint8.as_datatype_enum)
    for size in (2**40, 28, 28):
        proto.tensor_shape.dim.add(size=size)
    started = time.monotonic()
    expect_error(stubs.prediction.Predict, predict_request(inputs={"images": proto}), CODE.INVALID_ARGUMENT,
                 "max_request_elements")
    assert time.monotonic() - started < 10
    # A 1 KB string repeated to fill 20000 values (TensorProto's rule for short value lists): 20 MB, past
    # max_request_bytes (10 MiB) although the message is small.
    proto = tensor_pb2.TensorProto(dtype=tf.string.as_datatype_enum, string_val=[b"x" * 1024])
    proto.tensor_shape.dim.add(size=20000)
    expect_error(stubs.prediction.Predict, predict_request("text", {"text": proto}), CODE.INVALID_ARGUMENT,
                 "max_request_bytes")
    proto.tensor_shape.dim[0].size = 3  # a short list that stays small is filled as TF Serving fills it
    response = stubs.prediction.Predict(predict_request("text", {"text": proto}), timeout=TIMEOUT)
    assert list(outputs_of(response)["length"]) == [1024] * 3
    stubs.prediction.Predict(predict_request(inputs={"images": images(1)}), timeout=TIMEOUT)  # still serving


def test_string_tensors_round_trip(stubs, model_base):
    text = np.array([b"abc", b"\xff\x00z", b""], dtype=object)
    response = stubs.prediction.Predict(predict_request("text", {"text": text}), timeout=TIMEOUT)
    assert response.outputs["upper_bytes"].dtype == tf.string.as_datatype_enum
    assert list(response.outputs["upper_bytes"].string_val) == [b"ABC", b"\xff\x00Z", b""]
    got, want = outputs_of(response), reference(model_base, "text", 1, {"text": text})
    np.testing.assert_array_equal(got["length"], want["length"])
    assert got["length"].dtype == np.int32
    assert got["upper_bytes"].tolist() == want["upper_bytes"].tolist()


@pytest.mark.parametrize("batching", [False, True])
def test_concurrent_predicts_each_get_their_own_answer(model_base, batching):
    batches = [images(1 + i % 3, seed=10 + i) for i in range(8)]
    with grpc_server(model_base, batching=batching, batch_timeout_ms=20) as stubs:
        def call(x):
            return outputs_of(stubs.prediction.Predict(predict_request(inputs={"images": x}), timeout=TIMEOUT))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, batches))
    loaded = tf.saved_model.load(str(model_base / "mnist" / "2")).signatures["serving_default"]
    for x, got in zip(batches, results):
        want = loaded(images=tf.constant(x))["probabilities"].numpy()
        if batching:  # rows computed within a larger batch may round differently
            np.testing.assert_allclose(got["probabilities"], want, rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_equal(got["probabilities"], want)


def test_undecodable_message_does_not_stop_the_server(stubs):
    raw = stubs.channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                    request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\xff\xff\xff\xff", timeout=TIMEOUT)
    assert info.value.code() in (CODE.INTERNAL, CODE.INVALID_ARGUMENT, CODE.UNKNOWN)
    response = stubs.prediction.Predict(predict_request(inputs={"images": images(1)}), timeout=TIMEOUT)
    assert response.outputs["classes"].int64_val


# -- GetModelMetadata and GetModelStatus ----------------------------------------------------------------

def metadata_request(name="mnist", fields=("signature_def",), version=None):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.metadata_field.extend(fields)
    return request


def test_get_model_metadata(stubs):
    response = stubs.prediction.GetModelMetadata(metadata_request(), timeout=TIMEOUT)
    assert response.model_spec.name == "mnist"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == ""
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signature_defs)
    assert {"serving_default", "classes_only"} <= set(signature_defs.signature_def)
    default = signature_defs.signature_def["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert default.inputs["images"].dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in default.inputs["images"].tensor_shape.dim] == [-1, 28, 28]
    assert default.outputs["probabilities"].dtype == tf.float32.as_datatype_enum
    assert default.outputs["classes"].dtype == tf.int64.as_datatype_enum
    pinned = stubs.prediction.GetModelMetadata(metadata_request(version=1), timeout=TIMEOUT)
    assert pinned.model_spec.version.value == 1
    expect_error(stubs.prediction.GetModelMetadata, metadata_request(fields=()), CODE.INVALID_ARGUMENT,
                 "must specify at least one metadata_field")
    expect_error(stubs.prediction.GetModelMetadata, metadata_request(fields=("signature_def", "tags")),
                 CODE.INVALID_ARGUMENT, "Metadata field tags is not supported")
    expect_error(stubs.prediction.GetModelMetadata, metadata_request("nosuchmodel"), CODE.NOT_FOUND)


def status_request(name="mnist", version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    return request


def test_get_model_status(stubs):
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    response = stubs.model.GetModelStatus(status_request(), timeout=TIMEOUT)
    assert [(s.version, s.state, s.status.error_code, s.status.error_message)
            for s in response.model_version_status] == [(2, available, 0, ""), (1, available, 0, "")]
    response = stubs.model.GetModelStatus(status_request(version=1), timeout=TIMEOUT)
    assert [(s.version, s.state) for s in response.model_version_status] == [(1, available)]
    expect_error(stubs.model.GetModelStatus, status_request("nosuchmodel"), CODE.NOT_FOUND, "nosuchmodel")
    expect_error(stubs.model.GetModelStatus, status_request(version=7), CODE.NOT_FOUND)
    expect_error(stubs.model.GetModelStatus, get_model_status_pb2.GetModelStatusRequest(), CODE.INVALID_ARGUMENT,
                 "Missing ModelSpec")


def test_unsupported_methods_are_unimplemented(stubs):
    request = inference_pb2.MultiInferenceRequest()
    expect_error(stubs.prediction.MultiInference, request, CODE.UNIMPLEMENTED)
    expect_error(stubs.model.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest(),
                 CODE.UNIMPLEMENTED)


# -- Classify and Regress -------------------------------------------------------------------------------

def example(x=None, bias=None):
    features = {}
    if x is not None:
        features["x"] = tf.train.Feature(float_list=tf.train.FloatList(value=x))
    if bias is not None:
        features["bias"] = tf.train.Feature(float_list=tf.train.FloatList(value=[bias]))
    return tf.train.Example(features=tf.train.Features(feature=features))


def examples_request(kind, name="census", *, examples=(), context=None, signature=None, version=None):
    request = (classification_pb2.ClassificationRequest() if kind == "classify"
               else regression_pb2.RegressionRequest())
    request.model_spec.name = name
    if signature is not None:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if context is None:
        request.input.example_list.examples.extend(examples)
    else:
        request.input.example_list_with_context.examples.extend(examples)
        request.input.example_list_with_context.context.CopyFrom(context)
    return request


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_classify_on_a_classify_signature(stubs):
    xs, biases = np.array([[1.0, 2.0], [-0.5, 0.25]], np.float32), np.array([0.0, 1.5], np.float32)
    request = examples_request("classify", examples=[example(xs[0]), example(xs[1], float(biases[1]))])
    response = stubs.prediction.Classify(request, timeout=TIMEOUT)
    assert response.model_spec.name == "census"
    assert response.model_spec.version.value == 3
    assert response.model_spec.signature_name == "serving_default"
    want = softmax(xs @ WEIGHTS + biases[:, None] * BIAS_DIRECTION)
    rows = response.result.classifications
    assert len(rows) == 2
    for row, expected in zip(rows, want):
        assert [c.label for c in row.classes] == ["cat", "dog", "emu"]
        np.testing.assert_allclose([c.score for c in row.classes], expected, rtol=1e-5)
    # scores only: labels are empty, as TF Serving leaves them
    request = examples_request("classify", examples=[example(xs[0])], signature="scores_only")
    row = stubs.prediction.Classify(request, timeout=TIMEOUT).result.classifications[0]
    assert [c.label for c in row.classes] == ["", "", ""]
    np.testing.assert_allclose([c.score for c in row.classes], want[0], rtol=1e-5)


def test_classify_merges_the_context_into_each_example(stubs):
    # The context's bias applies to every example; an example's own bias replaces it.
    xs = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    request = examples_request("classify", examples=[example(xs[0]), example(xs[1], bias=-3.0)],
                               context=example(bias=2.0))
    response = stubs.prediction.Classify(request, timeout=TIMEOUT)
    want = softmax(xs @ WEIGHTS + np.array([[2.0], [-3.0]], np.float32) * BIAS_DIRECTION)
    got = [[c.score for c in row.classes] for row in response.result.classifications]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    xs_only = examples_request("classify", examples=[example(bias=1.0)], context=example(x=[1.0, 1.0]))
    got = [c.score for c in stubs.prediction.Classify(xs_only, timeout=TIMEOUT).result.classifications[0].classes]
    np.testing.assert_allclose(got, softmax(np.array([1.0, 1.0], np.float32) @ WEIGHTS + BIAS_DIRECTION), rtol=1e-5)


def test_regress_on_a_regress_signature(stubs):
    xs = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], np.float32)
    request = examples_request("regress", examples=[example(x) for x in xs], context=example(bias=0.25),
                               signature="regress")
    response = stubs.prediction.Regress(request, timeout=TIMEOUT)
    assert response.model_spec.signature_name == "regress"
    assert response.model_spec.version.value == 3
    np.testing.assert_allclose([r.value for r in response.result.regressions], xs @ REGRESS_WEIGHTS + 0.25,
                               rtol=1e-6)


def test_classify_and_regress_refuse_other_signatures(stubs):
    some = [example([1.0, 2.0])]
    expect_error(stubs.prediction.Classify, examples_request("classify", "mnist", examples=some),
                 CODE.INVALID_ARGUMENT, "Expected classification signature method_name to be "
                 "tensorflow/serving/classify. Was: tensorflow/serving/predict")
    expect_error(stubs.prediction.Regress, examples_request("regress", examples=some),
                 CODE.INVALID_ARGUMENT, "Expected regression signature method_name to be tensorflow/serving/regress")
    expect_error(stubs.prediction.Classify, examples_request("classify", examples=some, signature="regress"),
                 CODE.INVALID_ARGUMENT, "Expected classification signature")
    expect_error(stubs.prediction.Classify, examples_request("classify", examples=some, signature="nope"),
                 CODE.INVALID_ARGUMENT, "No signature was found with the name: nope")
    expect_error(stubs.prediction.Classify, examples_request("classify"), CODE.INVALID_ARGUMENT, "Input is empty.")
    expect_error(stubs.prediction.Classify, examples_request("classify", "nosuchmodel", examples=some),
                 CODE.NOT_FOUND)
    # A classify signature still answers Predict with its tensors, as TF Serving's Predict does.
    serialized = np.array([e.SerializeToString() for e in some], dtype=object)
    response = stubs.prediction.Predict(predict_request("census", {"inputs": serialized}), timeout=TIMEOUT)
    assert list(response.outputs["classes"].string_val) == LABELS


# -- limits and deadlines --------------------------------------------------------------------------------

def test_limits_and_deadlines(model_base):
    with grpc_server(model_base, max_request_bytes=64 * 1024, max_request_elements=1000,
                     request_timeout_s=1.0, max_in_flight=1, max_queued=0) as stubs:
        call = stubs.prediction.Predict
        big = np.array([b"x" * (100 * 1024)], dtype=object)
        expect_error(call, predict_request("text", {"text": big}), CODE.RESOURCE_EXHAUSTED)
        expect_error(call, predict_request(inputs={"images": images(2)}), CODE.INVALID_ARGUMENT,
                     "more than 1000 values", "max_request_elements")
        assert call(predict_request(inputs={"images": images(1)}), timeout=TIMEOUT).outputs["classes"].int64_val
        # The server's own deadline (request_timeout_s) cancels a slow model call: DEADLINE_EXCEEDED from
        # the server, well before the client's deadline, and the one model slot is free again right after.
        started = time.monotonic()
        details = expect_error(call, predict_request("spin", {"n": np.int64(10**7)}), CODE.DEADLINE_EXCEEDED,
                               timeout=TIMEOUT)
        assert time.monotonic() - started < 10, details
        assert "Deadline exceeded" in details
        time.sleep(0.5)
        response = call(predict_request("spin", {"n": np.int64(10)}), timeout=TIMEOUT)
        assert outputs_of(response)["total"] == 10.0
        # The client's deadline, shorter than request_timeout_s, also ends the call and frees the slot.
        expect_error(call, predict_request("spin", {"n": np.int64(10**7)}), CODE.DEADLINE_EXCEEDED, timeout=0.3)
        time.sleep(0.5)
        response = call(predict_request("spin", {"n": np.int64(10)}), timeout=TIMEOUT)
        assert outputs_of(response)["total"] == 10.0


# -- the pieces: error mapping, details, deadlines --------------------------------------------------------

def test_serving_errors_map_to_tf_servings_grpc_codes():
    from kerasapps.serving.grpc_api import grpc_code

    assert {status: grpc_code(status) for status in (400, 404, 408, 413, 415, 431, 500, 501, 503, 504)} == {
        400: CODE.INVALID_ARGUMENT, 404: CODE.NOT_FOUND, 408: CODE.DEADLINE_EXCEEDED, 413: CODE.RESOURCE_EXHAUSTED,
        415: CODE.INVALID_ARGUMENT, 431: CODE.RESOURCE_EXHAUSTED, 500: CODE.INTERNAL, 501: CODE.UNIMPLEMENTED,
        503: CODE.UNAVAILABLE, 504: CODE.DEADLINE_EXCEEDED}
    assert grpc_code(409) == CODE.INVALID_ARGUMENT and grpc_code(502) == CODE.INTERNAL


def test_details_are_one_short_line_of_utf8():
    from kerasapps.serving.grpc_api import _details

    assert _details("first line\n  second\tline ") == "first line second line"
    long = _details("é" * 3000)
    assert long == "é" * 1024 + "...TRUNCATED"
    assert _details("bad \udcff byte").encode("utf-8") == b"bad ? byte"


class _Context:
    """What the handler reads of a grpc ServicerContext: the client's deadline."""

    def __init__(self, remaining):
        self.remaining = remaining

    def time_remaining(self):
        return self.remaining


def test_the_clients_deadline_caps_request_timeout(model_base):
    from kerasapps.serving.errors import ServingError
    from kerasapps.serving.grpc_api import _Handler

    handler = _Handler(server.create_app(str(model_base), request_timeout_s=5.0).state.server)
    assert handler.deadline_s(_Context(None)) == 5.0
    assert handler.deadline_s(_Context(60.0)) == 5.0
    assert handler.deadline_s(_Context(0.25)) == 0.25
    with pytest.raises(ServingError) as info:
        handler.deadline_s(_Context(0.0))
    assert info.value.status == 504
