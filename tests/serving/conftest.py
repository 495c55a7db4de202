"""Shared by the serving tests: a real server on 127.0.0.1, in this process, stopped after its test."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def live_server(app, **uvicorn_options):
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yields ``(base_url, uvicorn.Server)``."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "the server did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def serving():
    """``with serving(app) as (base_url, server):`` — :func:`live_server` for a test."""
    return live_server


def export_constant(path, value: float):
    """'serving_default': x float [None] -> y = x * 0 + value: which version answered is in the answer."""
    import keras
    import tensorflow as tf

    scale = tf.Variable(float(value))
    archive = keras.export.ExportArchive()
    archive.track(scale)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": x * 0.0 + scale}

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(path), verbose=False)


@pytest.fixture(scope="session")
def constant_export():
    """:func:`export_constant`, for a test to write exports that say which version answered."""
    return export_constant


@pytest.fixture
def port_pair():
    """Two free 127.0.0.1 ports (REST, gRPC)."""
    return free_port(), free_port()
