"""The server's options, declared once: ``kerasapps serve``'s flags, :func:`kerasapps.serve`'s keyword arguments
and the app (:func:`kerasapps.serving.server.create_app`) all follow from :class:`ServingOptions` (see
:mod:`kerasapps.core.options`); a new limit is one field here, which the server then reads.

Standard library only, so ``kerasapps serve --help`` answers without TensorFlow.
"""

from __future__ import annotations

import dataclasses

from kerasapps.core.options import PathLike, check_ranges, option
from kerasapps.core.schema import EXPORT_ROOT

_PORT = {"minimum": 0, "maximum": 65535}


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """The server's options and their defaults; each is checked against its declared range (ValueError)."""

    model_config_file: PathLike | None = option(
        None, "TF Serving's model config (ModelServerConfig text protobuf): several model base paths, "
              "model_version_policy (latest N / all / specific), version_labels. Replaces --model-base.", path="file")
    host: str = option("127.0.0.1", "Interface to bind (loopback by default: there is no authentication).")
    port: int = option(8501, "REST port (TF Serving's).", **_PORT)
    grpc_port: int | None = option(None, "Also serve TF Serving's gRPC API (PredictionService, ModelService) here; "
                                         "TF Serving uses 8500.", show_default=False, **_PORT)
    batching: bool = option(False, "Group concurrent predict requests into one model call.",
                            flag="--batching/--no-batching")
    max_batch_size: int = option(32, "Batching: most examples in one grouped model call.", minimum=1)
    batch_timeout_ms: float = option(5.0, "Batching: milliseconds a request waits for others to join it.", minimum=0)
    max_request_bytes: int = option(10 * 2**20, "Largest body (after gzip decoding) or gRPC message.", minimum=1)
    max_request_elements: int = option(4 * 2**20, "Most values in one request, counted before they are allocated.",
                                       minimum=1)
    request_timeout_s: float = option(30.0, "Seconds to read and answer a request; a model call past it is "
                                            "cancelled.", flag="--request-timeout", minimum=0, min_open=True)
    max_workers: int | None = option(None, "Threads running model calls (default: min(32, cpus + 4)).", minimum=1)
    max_in_flight: int | None = option(None, "Model calls running at once (default: --max-workers).", minimum=1)
    max_queued: int = option(64, "Model calls waiting for a slot; past it requests get 503.", minimum=0)
    max_header_bytes: int = option(16 * 2**10, "A request's line and headers; past it, 431.", minimum=1024)
    max_headers: int = option(100, "Header fields in one request; past it, 431.", minimum=1)
    header_timeout_s: float = option(10.0, "Seconds for a request's headers to arrive.", flag="--header-timeout",
                                     minimum=0, min_open=True)
    keep_alive_timeout_s: float = option(5.0, "Seconds an idle keep-alive connection stays open.",
                                         flag="--keep-alive-timeout", minimum=0, min_open=True)
    max_connections: int = option(256, "Open connections at once; past it, new ones get 503 and are closed.",
                                  minimum=1)
    load_retry_interval_s: float = option(5.0, "Seconds before a failed load is retried.",
                                          flag="--load-retry-interval", minimum=0)
    monitoring: bool = option(False, "Serve Prometheus metrics at /monitoring/prometheus/metrics (TF Serving's path): "
                                     "requests, latency, in-flight and queued calls, load failures.",
                              flag="--monitoring/--no-monitoring")
    poll_interval_s: float = option(2.0, "Seconds between looks at the model base for new or removed versions "
                                         "(0: on every request).", flag="--poll-interval", minimum=0)

    def __post_init__(self):
        check_ranges(self)


@dataclasses.dataclass(frozen=True)
class ServeOptions(ServingOptions):
    """``kerasapps serve``: the model base the server is started on, then the server's own options."""

    model_base: PathLike = option(EXPORT_ROOT, "Folder of NAME/VERSION/ SavedModels (what export writes).",
                                  path="dir", positional=True)

    def serving(self) -> ServingOptions:
        """The server's options alone (a model config file's path as a string)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(ServingOptions)}
        if values["model_config_file"] is not None:
            values["model_config_file"] = str(values["model_config_file"])
        return ServingOptions(**values)
