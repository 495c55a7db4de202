"""The server's options, in one place: the command line, the Python API and the app all read them here.

Standard library only, so ``kerasapps serve --help`` answers without TensorFlow.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """The server's options and their defaults (``kerasapps serve`` and :func:`kerasapps.serve` take these)."""

    host: str = "127.0.0.1"  # loopback: there is no authentication
    port: int = 8501  # TF Serving's REST port
    grpc_port: int | None = None  # TF Serving's gRPC port is 8500; None: no gRPC
    max_request_bytes: int = 10 * 2**20  # a body, after any gzip decoding (gRPC: a message)
    max_request_elements: int = 4 * 2**20  # values in one request's tensors, counted before they are allocated
    request_timeout_s: float = 30.0  # reading a body (408) and answering (504; the model call is cancelled)
    batching: bool = False
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    poll_interval_s: float = 2.0
    max_workers: int | None = None  # threads running model calls (default min(32, cpus + 4))
    max_in_flight: int | None = None  # model calls running at once (default: max_workers)
    max_queued: int = 64  # model calls waiting for a slot; past it, 503
    max_header_bytes: int = 16 * 2**10  # a request's line and headers together; past it, 431
    max_headers: int = 100  # header fields in one request; past it, 431
    header_timeout_s: float = 10.0  # a request's line and headers must arrive within this
    keep_alive_timeout_s: float = 5.0  # an idle keep-alive connection is closed after this
    max_connections: int = 256  # open connections at once; past it, new ones get 503 and are closed
    load_retry_interval_s: float = 5.0  # a version whose load failed is retried after this
    model_config_file: str | None = None  # TF Serving's ModelServerConfig, text protobuf

    def __post_init__(self):
        checks = {
            "max_request_bytes": self.max_request_bytes > 0,
            "max_request_elements": self.max_request_elements > 0,
            "request_timeout_s": self.request_timeout_s > 0,
            "max_batch_size": self.max_batch_size >= 1,
            "batch_timeout_ms": self.batch_timeout_ms >= 0,
            "poll_interval_s": self.poll_interval_s >= 0,
            "max_workers": self.max_workers is None or self.max_workers >= 1,
            "max_in_flight": self.max_in_flight is None or self.max_in_flight >= 1,
            "max_queued": self.max_queued >= 0,
            "max_header_bytes": self.max_header_bytes >= 1024,
            "max_headers": self.max_headers >= 1,
            "header_timeout_s": self.header_timeout_s > 0,
            "keep_alive_timeout_s": self.keep_alive_timeout_s > 0,
            "max_connections": self.max_connections >= 1,
            "load_retry_interval_s": self.load_retry_interval_s >= 0,
            "grpc_port": self.grpc_port is None or 0 <= self.grpc_port <= 65535,
        }
        for option, ok in checks.items():
            if not ok:
                raise ValueError(f"Invalid {option}: {getattr(self, option)!r}")
