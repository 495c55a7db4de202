"""The JSON codec against TF Serving's json_tensor.cc behaviour, called directly (no server).

Most cases run twice: on a document from ``parse_request`` (whose byte scan may let numbers take the
``np.array`` fast path) and on a plain dict (always the leaf-by-leaf path); both must agree.
"""

from __future__ import annotations

import gzip
import json
import math
import tracemalloc
import zlib

import numpy as np
import pytest
import tensorflow as tf

from kerasapps.serving import codec, errors, request_body
from kerasapps.serving.errors import ServingError


def spec(dtype, shape=(None,)):
    return {"x": tf.TensorSpec(list(shape), dtype)}


@pytest.fixture(params=["parsed", "dict"])
def decode(request):
    """decode(doc or body, specs, **kw) -> {name: array}, by the parametrized path."""

    def run(doc, specs, **kwargs):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        parsed = request_body.parse_request(body) if request.param == "parsed" else json.loads(body)
        arrays, _ = codec.decode_inputs(parsed, specs, **kwargs)
        return arrays

    return run


def refused(run, *args, status=400, **kwargs) -> str:
    with pytest.raises(ServingError) as caught:
        run(*args, **kwargs)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


# -- numbers into float inputs ------------------------------------------------------------

def test_an_integer_into_a_float_input_is_accepted_as_tf_serving_does(decode):
    from_int = decode({"instances": [1435774380]}, spec(tf.float32))["x"]
    from_float = decode({"instances": [1435774380.0]}, spec(tf.float32))["x"]
    assert from_int.dtype == np.float32 and from_int.tolist() == [1435774336.0]
    np.testing.assert_array_equal(from_int, from_float)
    mixed = decode({"instances": [[1, 2.5, -3]]}, spec(tf.float64, (None, 3)))["x"]
    assert mixed.dtype == np.float64 and mixed.tolist() == [[1.0, 2.5, -3.0]]


def test_integers_convert_through_double_like_a_cpp_static_cast(decode):
    # 2**60 + 2**36 + 1 rounds to 2**60 + 2**37 straight to float32, but to 2**60 through double.
    value = 2**60 + 2**36 + 1
    got = decode({"instances": [value]}, spec(tf.float32))["x"]
    assert int(got[0]) == int(np.float32(np.float64(value))) == 2**60
    assert decode({"instances": [2**53 + 1]}, spec(tf.float64))["x"].tolist() == [2.0**53]


def test_values_past_the_float_range_become_inf_and_tiny_ones_zero(decode):
    doc = {"instances": [1e39, -1e39, 10**39, -(10**39), 1.7976931348623157e308, 2.2250738585072014e-308]}
    got = decode(doc, spec(tf.float32))["x"]
    assert got.tolist() == [math.inf, -math.inf, math.inf, -math.inf, math.inf, 0.0]
    huge = decode({"instances": [10**400, -(10**400), 1.5]}, spec(tf.float64))["x"]
    assert huge.tolist() == [math.inf, -math.inf, 1.5]


def test_nan_and_infinity_tokens_fit_float_inputs(decode):
    got = decode(b'{"instances": [NaN, Infinity, -Infinity, 1]}', spec(tf.float32))["x"]
    assert np.isnan(got[0]) and got[1:].tolist() == [math.inf, -math.inf, 1.0]


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.complex64])
def test_half_bfloat16_and_complex_inputs_take_ints_and_floats(decode, dtype):
    got = decode({"instances": [1, 2.5, 70000]}, spec(dtype))["x"]
    assert got.dtype == np.dtype(dtype.as_numpy_dtype)
    assert got.astype(np.complex128).real[:2].tolist() == [1.0, 2.5]


# -- booleans, nulls and strings are not numbers ------------------------------------------

@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.uint8, tf.float32, tf.float64])
@pytest.mark.parametrize("values", [[True], [1, True], [True, 1], [[0], [False]], [[1, 2], [3, True]]])
def test_booleans_are_not_numbers(decode, dtype, values):
    shape = np.shape(values)
    message = refused(decode, {"instances": values}, spec(dtype, (None,) * len(shape)))
    assert "is not of expected type" in message and ("Type: True" in message or "Type: False" in message)


@pytest.mark.parametrize("values", [[1], [True, 0], [1.0, False], [[True], [1]]])
def test_numbers_are_not_booleans(decode, values):
    message = refused(decode, {"instances": values}, spec(tf.bool, (None,) * np.ndim(values)))
    assert "Type: Number is not of expected type: DT_BOOL" in message


def test_booleans_fit_a_bool_input(decode):
    got = decode({"instances": [[True, False], [False, False]]}, spec(tf.bool, (None, 2)))["x"]
    assert got.dtype == np.bool_ and got.tolist() == [[True, False], [False, False]]


@pytest.mark.parametrize("dtype", [tf.int32, tf.float32])
@pytest.mark.parametrize("values", [[1, None], [None], ["1.5"], [1, "2"], [[1], [{}]], [{"b64": "AA=="}]])
def test_nulls_strings_and_objects_are_not_numbers(decode, dtype, values):
    message = refused(decode, {"instances": values}, spec(dtype, (None,) * np.ndim(np.array(values, dtype=object))))
    assert "is not of expected type" in message


@pytest.mark.parametrize("number, dtype", [(0, tf.float32), (0, tf.int32), (0.5, tf.int32), (0.5, tf.float64)])
def test_a_long_string_among_numbers_is_refused_without_a_huge_array(decode, number, dtype):
    # np.array() of these would be a '<U50000' array of 2,001 items: 400 MB.
    doc = {"signature_name": "serving_default", "instances": [number] * 2000 + ["x" * 50_000]}
    tracemalloc.start()
    try:
        refused(decode, doc, spec(dtype))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak


def test_a_body_the_scan_cannot_vouch_for_is_checked_value_by_value():
    cases = [
        (b'{"signature_name": "a\\"b", "instances": [["x"]]}', spec(tf.float32, (None, 1))),  # escaped quote
        ('{"instances": [1, true]}'.encode("utf-16"), spec(tf.int32)),  # the scan reads UTF-8 only
        (b'{"instances": [1, null]}', spec(tf.float32)),
        (b'{"instances": [{"x": [1], "y": "2"}]}', {"x": tf.TensorSpec([None, 1], tf.int32),
                                                    "y": tf.TensorSpec([None], tf.int32)}),
        (b'{"instances": [1.5, 2]}', spec(tf.int64)),
    ]
    for body, specs in cases:
        message = refused(lambda body=body, specs=specs: codec.decode_inputs(request_body.parse_request(body), specs))
        assert "is not of expected type" in message, (body, message)


# -- integers into integer inputs -----------------------------------------------------------

def test_int64_extremes_round_trip_exactly(decode):
    got = decode({"instances": [9223372036854775807, -9223372036854775808, 1]}, spec(tf.int64))["x"]
    assert got.dtype == np.int64 and got.tolist() == [9223372036854775807, -9223372036854775808, 1]
    big = decode({"instances": [9223372036854775808, 18446744073709551615]}, spec(tf.uint64))["x"]
    assert big.dtype == np.uint64 and big.tolist() == [9223372036854775808, 18446744073709551615]


@pytest.mark.parametrize("dtype, values", [
    (tf.int64, [9223372036854775808]), (tf.int64, [-1, 9223372036854775808]),
    (tf.int64, [-9223372036854775809]), (tf.uint64, [18446744073709551616]), (tf.uint64, [-1]),
    (tf.uint8, [300]), (tf.uint8, [-1]), (tf.int8, [-129]), (tf.int32, [2**31]), (tf.uint32, [2**32]),
])
def test_integers_out_of_the_inputs_range_are_refused(decode, dtype, values):
    assert "out of range" in refused(decode, {"instances": values}, spec(dtype))


@pytest.mark.parametrize("body", [b'{"instances": [1.0]}', b'{"instances": [1, 2.5]}', b'{"instances": [1e3]}',
                                  b'{"instances": [NaN]}', b'{"instances": [Infinity]}'])
def test_decimals_are_not_integers(decode, body):
    assert "Type: Number is not of expected type: DT_INT32" in refused(decode, body, spec(tf.int32))


def test_integer_dtypes_keep_their_values(decode):
    for dtype, values in [(tf.uint8, [0, 255]), (tf.int8, [-128, 127]), (tf.int16, [-32768, 32767]),
                          (tf.uint32, [0, 2**32 - 1]), (tf.int32, [-(2**31), 2**31 - 1])]:
        got = decode({"instances": values}, spec(dtype))["x"]
        assert got.dtype == np.dtype(dtype.as_numpy_dtype) and got.tolist() == values


# -- shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [tf.float32, tf.string])
def test_ragged_lists_are_refused_with_where(decode, dtype):
    sample = "a" if dtype == tf.string else 1
    m = refused(decode, {"inputs": [[sample, sample], [sample]]}, spec(dtype, (None, None)))
    assert "unexpected size: 1 at level: 1 expected size: 2" in m
    m = refused(decode, {"inputs": [[sample], sample]}, spec(dtype, (None, None)))
    assert "found at incorrect level: 2" in m
    m = refused(decode, {"inputs": [[sample, [sample]], [sample, sample]]}, spec(dtype, (None, None)))
    assert "Encountered list at unexpected level: 2" in m


def test_shapes_and_scalars(decode):
    assert decode({"inputs": 3.5}, spec(tf.float32, ()))["x"].shape == ()
    empty = decode({"inputs": []}, spec(tf.int32))["x"]
    assert empty.shape == (0,) and empty.dtype == np.int32
    m = refused(decode, {"instances": [[1, 2, 3]]}, spec(tf.float32, (None, 2)))
    assert "has shape [1, 3], but the signature expects [-1, 2]" in m


def test_nesting_past_numpys_dimensions_is_a_400(decode):
    value = 1
    for _ in range(70):
        value = [value]
    assert "nested 70 deep" in refused(decode, {"inputs": value}, {"x": tf.TensorSpec(None, tf.float32)})


def test_strings_and_b64(decode):
    got = decode({"instances": ["héllo", {"b64": "AP8="}]}, spec(tf.string))["x"]
    assert got.tolist() == ["héllo".encode(), b"\x00\xff"]
    assert "base64" in refused(decode, {"instances": [{"b64": "!!"}]}, spec(tf.string))
    assert "lone surrogate" in refused(decode, b'{"instances": ["\\udc80"]}', spec(tf.string))
    assert "Type: Number is not of expected type: DT_STRING" in refused(decode, {"instances": [1]}, spec(tf.string))


def test_fast_and_exact_paths_agree():
    specs = {"a": tf.TensorSpec([None, 2], tf.uint8), "b": tf.TensorSpec([None], tf.float32),
             "c": tf.TensorSpec([None], tf.int64), "d": tf.TensorSpec([None], tf.float64)}
    body = json.dumps({"signature_name": "serving_default", "instances": [
        {"a": [0, 255], "b": 16777217, "c": -5, "d": 0.1},
        {"a": [7, 8], "b": 1e39, "c": 2**62, "d": 3}]}).encode()
    fast, row = codec.decode_inputs(request_body.parse_request(body), specs)
    exact, _ = codec.decode_inputs(json.loads(body), specs)
    assert row and fast.keys() == exact.keys() == specs.keys()
    for name in specs:
        assert fast[name].dtype == exact[name].dtype
        np.testing.assert_array_equal(fast[name], exact[name])
    assert fast["b"].tolist() == [16777216.0, math.inf] and fast["c"].tolist() == [-5, 2**62]


def test_a_28x28_uint8_image_decodes_exactly():
    image = np.random.default_rng(0).integers(0, 256, (1, 28, 28)).tolist()
    body = json.dumps({"instances": image}).encode()
    specs = spec(tf.uint8, (None, 28, 28))
    got, _ = codec.decode_inputs(request_body.parse_request(body), specs)
    assert got["x"].dtype == np.uint8 and got["x"].tolist() == image


# -- the element limit ---------------------------------------------------------------------

def test_values_past_max_elements_are_refused_before_conversion(decode):
    specs = {"a": tf.TensorSpec([None, 4], tf.float32), "b": tf.TensorSpec([None], tf.string)}
    rows = [{"a": [0.5, 1.5, 2.5, 3.5], "b": "s"}] * 200  # 1,000 values
    assert decode({"instances": rows}, specs, max_elements=1000)["a"].shape == (200, 4)
    message = refused(decode, {"instances": rows + rows[:1]}, specs, max_elements=1000)
    assert "holds 1005 values, more than the limit of 1000 (--max-request-elements)" in message
    # Counted before any conversion: a wrong value past the limit is not even looked at.
    bad = {"inputs": {"a": [[1, 2, 3, "x"]] * 300, "b": ["s"]}}
    assert "more than the limit of 1000" in refused(decode, bad, specs, max_elements=1000)


def test_count_upper_bound_bounds_the_values_of_any_document():
    docs = [{"instances": [[1, 2], [3, 4]]}, {"inputs": {"a": [[]], "b": "x,y,z", "c": [{}, [], None]}},
            {"instances": [{"a": [1.5] * 10, "b": [True, False]}] * 3}, [], {}, 5, {"a": ["", "", ""]}]

    def leaves(value):
        if isinstance(value, list):
            return sum(map(leaves, value)) if value else 1
        if isinstance(value, dict):
            return sum(map(leaves, value.values())) if value else 1
        return 1

    for doc in docs:
        for body in (json.dumps(doc).encode(), json.dumps(doc, indent=1).encode("utf-16")):
            assert request_body.count_upper_bound(body) >= leaves(doc), (doc, body)
    assert request_body.count_upper_bound(b'{"instances": [[1,2],[3,4]]}') == 4
    assert request_body.count_upper_bound(b"") == 1


# -- Content-Encoding ----------------------------------------------------------------------

def test_bodies_are_decoded_by_their_content_encoding():
    body = json.dumps({"instances": [[1, 2, 3, 4]] * 50}).encode()
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw_deflate = raw.compress(body) + raw.flush()
    for encoding, data in [(None, body), ("", body), ("identity", body), ("gzip", gzip.compress(body)),
                           ("GZip", gzip.compress(body)), ("x-gzip", gzip.compress(body)),
                           ("deflate", zlib.compress(body)), ("deflate", raw_deflate),
                           ("gzip, identity", gzip.compress(body)),
                           ("deflate, gzip", gzip.compress(zlib.compress(body))),
                           ("gzip", gzip.compress(body[:100]) + gzip.compress(body[100:]))]:
        assert request_body.decode_body(data, encoding, len(body)) == body, encoding


def test_a_zip_bomb_is_refused_without_being_expanded():
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * 2**20
    bomb = b"".join(compressor.compress(block) for _ in range(200)) + compressor.flush()  # 200 MB
    assert len(bomb) < 2**20
    tracemalloc.start()
    try:
        message = refused(request_body.decode_body, bomb, "gzip", 1_000_000, status=413)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "1000000" in message
    assert peak < 8 * 2**20, peak  # never expanded: 200 MB would have passed through memory


def test_the_limit_is_on_the_decoded_size():
    body = b"x" * 1000
    assert request_body.decode_body(gzip.compress(body), "gzip", 1000) == body
    refused(request_body.decode_body, gzip.compress(body), "gzip", 999, status=413)
    refused(request_body.decode_body, body, None, 999, status=413)


def test_unknown_and_corrupt_encodings():
    body = gzip.compress(b'{"instances": [1]}')
    assert "Unsupported Content-Encoding: br" in refused(request_body.decode_body, body, "br", 10**6, status=415)
    refused(request_body.decode_body, body, "gzip, br", 10**6, status=415)
    assert len(refused(request_body.decode_body, body, "x" * 100_000, 10**6, status=415)) < 300
    refused(request_body.decode_body, body[:-12], "gzip", 10**6)  # truncated
    refused(request_body.decode_body, b"not gzip at all", "gzip", 10**6)
    refused(request_body.decode_body, body[:10] + b"\xff" * 8 + body[18:], "gzip", 10**6)
    refused(request_body.decode_body, body + b"trailing junk", "gzip", 10**6)
    refused(request_body.decode_body, zlib.compress(b"{}") + b"junk", "deflate", 10**6)
    refused(request_body.decode_body, b"", "gzip", 10**6)


# -- error bodies and messages -------------------------------------------------------------

def test_error_bodies_are_utf8_json_whatever_the_message_holds():
    raw = errors.error_body("Signature not found: \udc80 é \ud83d")
    text = raw.decode("utf-8")  # strict: fails on a surrogate that got through
    assert json.loads(text) == {"error": "Signature not found: \ufffd é \ufffd"}
    assert "é".encode() in raw  # UTF-8, not \\u escapes
    long = errors.error_body("x" * 1_000_000)
    assert len(long) < 2100 and json.loads(long)["error"].endswith("...")
    assert json.loads(errors.error_body("y" * 50, limit=10))["error"] == "y" * 10 + "..."
    assert json.loads(errors.error_body('quote " and \n newline')) == {"error": 'quote " and \n newline'}


def test_a_lone_surrogate_signature_name_parses_and_its_messages_stay_safe():
    doc = request_body.parse_request(b'{"signature_name": "\\udc80abc", "instances": [1]}')
    assert doc["signature_name"] == "\udc80abc"
    raw = errors.error_body(f"Serving signature name: \"{doc['signature_name']}\" not found in signature def")
    assert "\ufffdabc" in json.loads(raw.decode("utf-8"))["error"]


def test_messages_quoting_client_input_stay_short(decode):
    huge = ["s" * 1000] * 5000
    assert len(refused(decode, {"instances": huge}, spec(tf.float32))) < 400
    assert len(refused(decode, {"instances": [[1.5] * 100_000]}, spec(tf.int32, (None, None)))) < 400
    keys = {f"key{i}": 1 for i in range(100_000)}
    message = refused(decode, {"instances": [keys]}, {"a": tf.TensorSpec([None], tf.int32),
                                                      "b": tf.TensorSpec([None], tf.int32)})
    assert "must be equal to: a,b" in message and len(message) < 400
    deep = [[["x" * 10_000] * 100] * 100]
    assert len(refused(decode, {"instances": deep}, spec(tf.float32, (None, None, None)))) < 400
    for body in (b"[" + b"1," * 100_000 + b"1]", b'"' + b"z" * 100_000 + b'"'):
        assert len(refused(request_body.parse_request, body)) < 300
    assert len(refused(request_body.parse_request, b'{"signature_name": [' + b"2," * 100_000 + b"2]}")) < 400
