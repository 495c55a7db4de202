"""Serving: a TensorFlow Serving-compatible server over a model base or a TF Serving model config, with TF Serving's
REST API and, on request, its gRPC API, and a client for any such server.

- :mod:`.server`: :func:`~.server.create_app` (the app: both front ends on one core) and :func:`~.server.serve`;
- :mod:`.core`: the protocol-neutral core both front ends call: model calls within slots and deadlines, predict,
  classify, regress, metadata and status, the dynamic batcher (:mod:`.batching`);
- front ends: :mod:`.rest` (TF Serving's REST API; request bodies in :mod:`.request_body`, JSON tensors in
  :mod:`.codec`, ``tf.Example`` requests and classify/regress results in :mod:`.examples`) and :mod:`.grpc_api`
  (TF Serving's gRPC services; its messages in :mod:`.grpc_messages`);
- models: :mod:`.repository` (finds, loads, unloads and polls versions), :mod:`.servable` (one loaded version,
  its cancellable signature calls) and :mod:`.model_config` (names, version policies, the model config parser);
- limits and errors: :mod:`.options` (every option and its default), :mod:`.http_limits` (what uvicorn accepts
  before the app sees a request), :mod:`.errors` (the one error type and its JSON body);
- :mod:`.metrics`: with ``monitoring``, Prometheus metrics at TF Serving's ``/monitoring/prometheus/metrics``
  (requests by model, version, API, entrypoint and status; latency; in-flight and queued calls; load failures);
- :mod:`.client`: asking any TF Serving-compatible REST server (no TensorFlow needed).
"""
