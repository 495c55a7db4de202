"""A TensorFlow Serving-compatible server over a model base directory or model config: REST, and gRPC on request.

Serves ``MODEL_BASE/NAME/VERSION/`` SavedModels (TF Serving's layout, what ``kerasapps export`` writes), or the
models of a TF Serving model config file, with TF Serving's REST API (:mod:`kerasapps.serving.rest`) and, with
``grpc_port``, TF Serving's gRPC ``PredictionService`` and ``ModelService`` (:mod:`kerasapps.serving.grpc_api`).
Both front ends call one :class:`~kerasapps.serving.core.ServingCore`: the same loaded versions, slots, deadlines
and batching. :func:`create_app` puts them together as a Starlette app whose lifespan runs the core and starts and
stops the gRPC server; :func:`serve` runs that app with uvicorn, with the HTTP limits of
:mod:`kerasapps.serving.http_limits` (header size, count and arrival time, idle keep-alive connections, open
connections).

Without a version the newest version the model's policy serves answers (see
:mod:`kerasapps.serving.repository`): new versions are found without a restart, removed ones unloaded.
``batching=True`` adds dynamic batching (:mod:`kerasapps.serving.batching`), ``monitoring=True`` Prometheus
metrics at TF Serving's ``/monitoring/prometheus/metrics`` (:mod:`kerasapps.serving.metrics`; 404 without).
Binds 127.0.0.1 by default; there is no authentication, so put a proxy in front before exposing it.

Example::

    from kerasapps.serving.server import serve
    serve("saved_models", port=8501, batching=True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os

from kerasapps.core.schema import EXPORT_ROOT
from kerasapps.serving.core import ServingCore
from kerasapps.serving.errors import ServingError
from kerasapps.serving.options import ServingOptions
from kerasapps.serving.repository import ModelRepository

logger = logging.getLogger("kerasapps.serving")

__all__ = ["create_app", "serve", "ServingError", "ModelRepository"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@contextlib.asynccontextmanager
async def _lifespan(app):
    """The app's life: the core runs (model base polling, threads) and, with ``grpc_port``, the gRPC front end
    serves beside the REST one (its bound port in ``app.state.grpc_port``) until the app stops."""
    core: ServingCore = app.state.server
    async with core.running():
        grpc_server = None
        if core.options.grpc_port is not None:
            from kerasapps.serving.grpc_api import start_grpc_server

            grpc_server, app.state.grpc_port = await start_grpc_server(core, core.options.host, core.options.grpc_port)
            logger.info("gRPC PredictionService on %s:%d", core.options.host, app.state.grpc_port)
        try:
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(1.0)


def create_app(model_base, options: ServingOptions | None = None, **overrides):
    """A Starlette app serving the SavedModels under ``model_base`` (or ``options.model_config_file``'s models)
    the way TF Serving does.

    ``options`` is a :class:`~kerasapps.serving.options.ServingOptions`; keyword ``overrides`` replace its
    fields (``create_app(base, poll_interval_s=0, batching=True)``). See ServingOptions for each limit.
    ``app.state.server`` is the app's :class:`~kerasapps.serving.core.ServingCore`, ``app.state.repository`` its
    model repository, and ``app.state.grpc_port`` the gRPC port bound while the app runs (None without gRPC).
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    from kerasapps.serving.rest import METHODS, RestApi

    options = dataclasses.replace(options or ServingOptions(), **overrides)
    if options.model_config_file is None and (model_base is None or not os.path.isdir(model_base)):
        logger.warning("Model base %s does not exist (yet); every model is 404 until it does",
                       model_base)
    core = ServingCore(model_base, options)
    routes = [Route("/{path:path}", RestApi(core).dispatch, methods=METHODS)]
    if core.metrics is not None:
        from kerasapps.serving.metrics import PATH

        routes.insert(0, Route(PATH, core.metrics.endpoint(), methods=["GET"]))
    app = Starlette(routes=routes, lifespan=_lifespan)
    app.state.server = core
    app.state.repository = core.repository
    app.state.grpc_port = None
    return app


def serve(model_base=EXPORT_ROOT, host: str = ServingOptions.host, port: int = ServingOptions.port, *,
          log_level: str = "info", access_log: bool = True, **app_options) -> None:
    """Run the server with uvicorn until interrupted (blocking).

    ``app_options`` are :func:`create_app`'s: ``options`` and ServingOptions fields. The default host is the
    loopback interface; binding anything else exposes unauthenticated model calls.
    """
    import uvicorn

    from kerasapps.serving.http_limits import uvicorn_config_kwargs

    if host not in _LOOPBACK:
        logger.warning("Serving on %s: reachable beyond this machine, with no authentication",
                       host)
    app = create_app(model_base, host=host, port=port, **app_options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log,
                **uvicorn_config_kwargs(app.state.server.options))
