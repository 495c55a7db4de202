"""The server's Prometheus metrics (``monitoring``), at TF Serving's path ``/monitoring/prometheus/metrics``.

TF Serving exposes its metrics there when started with a monitoring config (``prometheus_config { enable: true }``);
``kerasapps serve --monitoring`` does the same, in Prometheus' text format. Metrics that match one of TF Serving's
keep its name (Prometheus names may hold ':'); the others are named ``kerasapps_serving_...``:

- ``:tensorflow:serving:request_count`` (counter, so its sample is ``..._total``): requests answered, by
  ``model_name``, ``version``, ``API``, ``entrypoint`` and ``status``;
- ``:tensorflow:serving:request_latency`` (histogram, microseconds as TF Serving's, with its buckets): the wall time
  of each of those requests, by ``model_name``, ``version``, ``API`` and ``entrypoint``;
- ``kerasapps_serving_model_calls_in_flight`` and ``kerasapps_serving_model_calls_queued`` (gauges): model calls
  running and waiting for a slot (:class:`~kerasapps.serving.core.Slots`), read when scraped;
- ``kerasapps_serving_model_load_failures`` (counter, ``..._total``): failed loads (retries included) by
  ``model_name`` and ``version``.

Labels: ``entrypoint`` is ``REST`` or ``GRPC`` (TF Serving's values); ``API`` the call (``Predict``, ``Classify``,
``Regress``, ``GetModelMetadata``, ``GetModelStatus``; empty for a REST path that names none); ``status`` the HTTP
status code for REST (``200``, ``400``, ...) and the gRPC code's name for gRPC (``OK``, ``INVALID_ARGUMENT``, ...;
``499`` and ``CANCELLED`` for a client that went away). ``model_name`` is the model's name when the server knows
the model (configured, or found on disk), else empty, and ``version`` the version that answered, else empty:
names and versions a client sends never become series of their own.

One :class:`ServingMetrics` per app, with a registry of its own (several apps in one process do not share
counts). A front end wraps each request in :meth:`ServingMetrics.request` (REST and gRPC each in one place);
the serving core notes the version it resolved (:func:`note_version`). Without ``monitoring`` there is no
ServingMetrics, and no metric work on the request path.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import time

__all__ = ["ServingMetrics", "PATH", "REST", "GRPC", "note_call", "note_version", "LATENCY_BUCKETS_US"]

PATH = "/monitoring/prometheus/metrics"  # TF Serving's default prometheus_config path
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format generate_latest writes
REST, GRPC = "REST", "GRPC"  # the entrypoint label's values, TF Serving's
LATENCY_BUCKETS_US = tuple(10.0 * 1.8 ** i for i in range(33))  # TF Serving's: Buckets::Exponential(10, 1.8, 33)

_REQUEST_LABELS = ("model_name", "version", "API", "entrypoint")


@dataclasses.dataclass
class _Call:
    """What one request's labels are made of, filled in as the request goes."""

    entrypoint: str
    api: str = ""
    model: str = ""
    version: str = ""


_current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("kerasapps_serving_call", default=None)


def note_call(api: str, model: str) -> None:
    """The running request (if measured) is ``api`` on the model a client named ``model``."""
    call = _current.get()
    if call is not None:
        call.api, call.model = api, model


def note_version(version) -> None:
    """The running request (if measured) is answered by ``version``."""
    call = _current.get()
    if call is not None:
        call.version = str(version)


class ServingMetrics:
    """One app's metrics in a registry of its own; :meth:`exposition` is what the metrics path answers."""

    def __init__(self, known_model=None):
        """``known_model(name)``: whether a name is a model the server knows (else its label is empty)."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.known_model = known_model or (lambda name: True)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            ":tensorflow:serving:request_count", "The total number of requests (TF Serving's request_count), "
            "by model, version, API, entrypoint (REST or GRPC) and status (HTTP code or gRPC code name).",
            (*_REQUEST_LABELS, "status"), registry=self.registry)
        self.latency = Histogram(
            ":tensorflow:serving:request_latency", "Distribution of wall time (in microseconds) for "
            "Tensorflow Serving request (TF Serving's request_latency).", _REQUEST_LABELS,
            buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self.in_flight = Gauge("kerasapps_serving_model_calls_in_flight", "Model calls running now.",
                               registry=self.registry)
        self.queued = Gauge("kerasapps_serving_model_calls_queued", "Model calls waiting for a slot now.",
                            registry=self.registry)
        self.load_failures = Counter(
            "kerasapps_serving_model_load_failures", "Failed loads of a model version (retries included).",
            ("model_name", "version"), registry=self.registry)

    def track_slots(self, slots) -> None:
        """Read the in-flight and queued gauges from ``slots`` (a :class:`~kerasapps.serving.core.Slots`) when
        scraped: nothing is counted on the request path."""
        self.in_flight.set_function(lambda: slots.running)
        self.queued.set_function(lambda: slots.queued)

    def load_failed(self, name: str, version: int) -> None:
        """A load of ``name`` version ``version`` failed (called from a loading thread)."""
        self.load_failures.labels(name, str(version)).inc()

    @contextlib.contextmanager
    def request(self, entrypoint: str):
        """Measure the request run inside: yields a one-item list the front end puts its status in
        (an HTTP code or a gRPC code name); the handlers note the API, model and version on the way."""
        call = _Call(entrypoint)
        status = [""]
        token = _current.set(call)
        started = time.perf_counter()
        try:
            yield status
        finally:
            elapsed_us = (time.perf_counter() - started) * 1e6
            _current.reset(token)
            model = call.model if call.version or (call.model and self.known_model(call.model)) else ""
            labels = (model, call.version, call.api, entrypoint)
            self.requests.labels(*labels, status[0]).inc()
            self.latency.labels(*labels).observe(elapsed_us)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def endpoint(self):
        """The Starlette endpoint of :data:`PATH`."""
        from starlette.responses import Response

        async def metrics(request):
            return Response(self.exposition(), media_type=CONTENT_TYPE)

        return metrics
