"""Encoded images in requests: an image export's ``serving_bytes`` takes JPEG, PNG, BMP and GIF files' bytes
(``{"b64": ...}`` over REST, ``DT_STRING`` over gRPC), decodes them inside as training read image files and answers
as ``serving_default`` does for the same pixels; a request of bytes that are no image is one 400 (gRPC
INVALID_ARGUMENT) and the server keeps serving; ``kerasapps predict --url`` sends image files' bytes."""

from __future__ import annotations

import base64
import io
import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402
from serving_helpers import live_server, write_image_model  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

import kerasapps  # noqa: E402
from kerasapps.cli.main import cli  # noqa: E402
from kerasapps.serving import client  # noqa: E402
from kerasapps.serving.server import create_app  # noqa: E402

NAME = "mlp_mnist"
LOSSLESS = ("png", "bmp", "gif")


def encoded(image: np.ndarray, kind: str) -> bytes:
    """A grey [H, W] uint8 image as a file of ``kind`` (BMP as 24-bit RGB: TensorFlow reads no 8-bit BMP)."""
    picture = Image.fromarray(image)
    if kind == "bmp":
        picture = picture.convert("RGB")
    out = io.BytesIO()
    picture.save(out, format={"jpg": "JPEG"}.get(kind, kind.upper()), **({"quality": 90} if kind == "jpg" else {}))
    return out.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory, recipe_data_dir):
    """A real mlp_mnist export (smoke training) served over REST and gRPC, with MNIST test digits."""
    root = tmp_path_factory.mktemp("encoded")
    run = kerasapps.train(NAME, run_dir=root / "run", data_dir=recipe_data_dir, smoke=True, verbose=0)
    kerasapps.export(run.run_dir, out=root / "models")
    digits = np.load(recipe_data_dir / "mnist" / "mnist.npz")["x_test"][:4]
    app = create_app(str(root / "models"), grpc_port=0, poll_interval_s=0)
    with live_server(app) as (base, _):
        channel = grpc.insecure_channel(f"127.0.0.1:{app.state.grpc_port}")
        try:
            yield {"root": root, "url": f"{base}/v1/models/{NAME}", "digits": digits,
                   "stub": prediction_service_pb2_grpc.PredictionServiceStub(channel)}
        finally:
            channel.close()


def rest(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + ":predict", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def rest_columns(url: str, body: dict) -> dict:
    status, reply = rest(url, body)
    assert status == 200, reply
    rows = reply["predictions"]
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def pixels_rest(url: str, pixels: np.ndarray) -> dict:
    return rest_columns(url, {"instances": pixels.tolist()})


def bytes_rest(url: str, files: list[bytes]) -> dict:
    return rest_columns(url, {"signature_name": "serving_bytes",
                              "instances": [{"b64": base64.b64encode(f).decode()} for f in files]})


def jpeg_pixels(data: bytes) -> np.ndarray:
    """The pixels TensorFlow decodes a JPEG to (grey [H, W]), which the pixel path is sent."""
    return tf.io.decode_jpeg(data, channels=1).numpy()[..., 0]


def test_metadata_lists_serving_bytes_beside_serving_default(served):
    with urllib.request.urlopen(served["url"] + "/metadata", timeout=60) as response:
        signatures = json.loads(response.read())["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "serving_bytes"} <= set(signatures)
    assert list(signatures["serving_default"]["inputs"]) == ["images"]  # the pixel signature stays as it was
    inputs = signatures["serving_bytes"]["inputs"]
    assert list(inputs) == ["image_bytes"] and inputs["image_bytes"]["dtype"] == "DT_STRING"
    assert [int(d["size"]) for d in inputs["image_bytes"]["tensor_shape"]["dim"]] == [-1]
    assert set(signatures["serving_bytes"]["outputs"]) == set(signatures["serving_default"]["outputs"])


@pytest.mark.parametrize("kind", LOSSLESS)
def test_lossless_files_over_rest_answer_as_their_pixels(served, kind):
    digits = served["digits"]
    pixels = pixels_rest(served["url"], digits)
    decoded = bytes_rest(served["url"], [encoded(d, kind) for d in digits])
    assert decoded["classes"].tolist() == pixels["classes"].tolist()
    assert decoded["class_ids"].tolist() == pixels["class_ids"].tolist()
    np.testing.assert_allclose(decoded["probabilities"], pixels["probabilities"], atol=1e-5)


def test_jpeg_over_rest_answers_as_its_decoded_pixels(served):
    files = [encoded(d, "jpg") for d in served["digits"]]
    pixels = pixels_rest(served["url"], np.stack([jpeg_pixels(f) for f in files]))
    decoded = bytes_rest(served["url"], files)
    assert decoded["classes"].tolist() == pixels["classes"].tolist()
    np.testing.assert_allclose(decoded["probabilities"], pixels["probabilities"], atol=1e-5)


def grpc_predict(stub, signature: str, name: str, value) -> dict:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = NAME
    request.model_spec.signature_name = signature
    request.inputs[name].CopyFrom(value)
    response = stub.Predict(request, timeout=120)
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def test_png_and_jpeg_over_grpc_as_dt_string(served):
    digits, stub = served["digits"], served["stub"]
    files = [encoded(digits[0], "png"), encoded(digits[1], "jpg"), encoded(digits[2], "png")]
    proto = tf.make_tensor_proto(files, dtype=tf.string)
    assert proto.dtype == tf.string.as_datatype_enum
    decoded = grpc_predict(stub, "serving_bytes", "image_bytes", proto)
    pixels = grpc_predict(stub, "serving_default", "images",
                          tf.make_tensor_proto(np.stack([digits[0], jpeg_pixels(files[1]), digits[2]])))
    assert decoded["classes"].tolist() == pixels["classes"].tolist()
    np.testing.assert_allclose(decoded["probabilities"], pixels["probabilities"], atol=1e-5)


def test_undecodable_bytes_are_one_line_and_the_server_keeps_serving(served):
    url, stub, digit = served["url"], served["stub"], served["digits"][0]
    jpeg = encoded(digit, "jpg")
    png = encoded(digit, "png")
    huge = png[:16] + (50_000).to_bytes(4, "big") * 2 + png[24:]  # its header claims 2.5 billion pixels
    for broken in (jpeg[: len(jpeg) // 2], b"no image at all", huge):
        status, reply = rest(url, {"signature_name": "serving_bytes", "instances": [{"b64": base64.b64encode(
            broken).decode()}]})
        assert status == 400, reply
        message = reply["error"]
        assert "\n" not in message and ("image" in message.lower() or "jpeg" in message.lower()), message
        assert not any(wrapping in message for wrapping in ("Traceback", "{{", "[Op:")), message
        assert broken is not huge or "more than 40,000,000 pixels" in message, message
        request = predict_pb2.PredictRequest()
        request.model_spec.name = NAME
        request.model_spec.signature_name = "serving_bytes"
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([broken], dtype=tf.string))
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=120)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "\n" not in info.value.details(), info.value.details()
        assert bytes_rest(url, [jpeg])["classes"].shape == (1,)  # the next request is answered
        assert grpc_predict(stub, "serving_bytes", "image_bytes", tf.make_tensor_proto([jpeg], dtype=tf.string))


def test_predict_url_sends_image_files_bytes_and_answers_as_local_predict(served, monkeypatch):
    root, url, digits = served["root"], served["url"], served["digits"]
    paths = []
    for i, kind in enumerate(("png", "jpg", "bmp", "gif")):
        paths.append(root / f"digit{i}.{kind}")
        paths[-1].write_bytes(encoded(digits[i], kind))
    large = np.asarray(Image.fromarray(digits[0]).resize((40, 40), Image.BILINEAR))
    paths.append(root / "large.png")  # not the model's 28x28: pixels would be refused, bytes are resized inside
    paths[-1].write_bytes(encoded(large, "png"))
    sent = []
    request = client._request

    def recording(address, body=None, timeout=60.0):
        if body is not None:
            sent.append(body)
        return request(address, body, timeout)

    monkeypatch.setattr(client, "_request", recording)
    runner = CliRunner()
    remote = runner.invoke(cli, ["predict", "--json", "--url", url, *map(str, paths)])
    assert remote.exit_code == 0, remote.stderr
    local = runner.invoke(cli, ["predict", "--json", str(root / "models" / NAME), *map(str, paths)])
    assert local.exit_code == 0, local.stderr
    assert [body["signature_name"] for body in sent] == ["serving_bytes"]
    assert sent[0]["inputs"]["image_bytes"] == [{"b64": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    remote_rows, local_rows = json.loads(remote.stdout), json.loads(local.stdout)
    assert [r["input"] for r in remote_rows] == [str(p) for p in paths]
    assert [r["classes"] for r in remote_rows] == [r["classes"] for r in local_rows]
    np.testing.assert_allclose([r["probabilities"] for r in remote_rows],
                               [r["probabilities"] for r in local_rows], atol=1e-5)


def test_predict_url_sends_pixels_to_a_model_without_serving_bytes(tmp_path, monkeypatch):
    """An export of before (or TF Serving with another model) has no ``serving_bytes``: pixels, as before."""
    write_image_model(tmp_path / "models" / "mnist" / "1", seed=1)
    digit = np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)
    (tmp_path / "digit.png").write_bytes(encoded(digit, "png"))
    sent = []
    request = client._request
    monkeypatch.setattr(client, "_request", lambda address, body=None, timeout=60.0: (
        sent.append(body), request(address, body, timeout))[1])
    with live_server(create_app(str(tmp_path / "models"), poll_interval_s=0)) as (base, _):
        rows = client.predict_url(f"{base}/v1/models/mnist", [str(tmp_path / "digit.png")])
    bodies = [body for body in sent if body is not None]
    assert [body["signature_name"] for body in bodies] == ["serving_default"]
    assert bodies[0]["inputs"]["images"] == [digit.tolist()]
    assert rows[0]["input"] == str(tmp_path / "digit.png")


def test_an_any_size_model_decodes_bytes_to_its_read_size_as_it_fits_pixels():
    """image_transfer's kind of signature (any size, files read to ``read_size``, central square): the bytes of
    an RGB PNG of another size answer as its pixels do through ``serving_default``."""
    import keras

    from kerasapps.savedmodel.signatures import ImageClassifier

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    serving = ImageClassifier(None, None, 3, class_names="abcd", read_size=(16, 16), square=True)

    def preprocess(images):
        return tf.cast(images, tf.float32) / 255.0

    pixels = tf.function(lambda images: serving.outputs(model, preprocess, images),
                         input_signature=serving.input_signature())
    from_bytes = serving.extra_endpoints(model, preprocess)["serving_bytes"]
    image = np.random.default_rng(1).integers(0, 256, (24, 40, 3)).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    expected = pixels(tf.constant(image[None]))
    answer = from_bytes(tf.constant([out.getvalue()]))
    assert answer["classes"].numpy().tolist() == expected["classes"].numpy().tolist()
    np.testing.assert_allclose(answer["probabilities"].numpy(), expected["probabilities"].numpy(), atol=1e-6)
    assert not np.allclose(expected["probabilities"].numpy(), 0.25, atol=1e-3)  # the image tells the answer
