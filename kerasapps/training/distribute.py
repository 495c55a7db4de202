"""Distribution strategies by name, and the training loop used where ``model.fit`` cannot distribute.

``get_strategy(name)`` follows TF Model Garden's ``official/common/distribute_utils.py``
(``get_distribution_strategy``): one name per ``tf.distribute`` strategy, resolved once at the start of
a run, before TensorFlow initialises its devices (collective ops must be configured at program start).

==================  ============================================================================
``auto``            TPU when ``--tpu`` / ``$TPU_NAME`` names one (or a TPU VM's ``/dev/accel*`` exists),
                    ``mirrored`` when more than one GPU is visible, otherwise ``default``
``default``         TensorFlow's default strategy (no distribution): what a run without the flag gets
``one_device``      ``OneDeviceStrategy`` on GPU:0, else CPU:0
``mirrored``        ``MirroredStrategy`` over every GPU (every logical CPU device when there is no GPU)
``multi_worker``    ``MultiWorkerMirroredStrategy``; the cluster comes from ``$TF_CONFIG``
``parameter_server`` refused (see :data:`PARAMETER_SERVER_REFUSAL`)
``tpu``             ``TPUStrategy`` on ``--tpu ADDRESS`` (``local`` on a TPU VM); no TPU: exit code 1
==================  ============================================================================

**Batch size.** A recipe's ``batch_size`` is the *per-replica* batch; each optimizer step consumes a
global batch of ``batch_size * replicas`` examples, split evenly over the replicas, and gradients are
averaged over the global batch. The learning rate is used as configured: the linear scaling rule
(Goyal et al. 2017, "Accurate, Large Minibatch SGD") is left to the user, e.g. ``--set
learning_rate=...`` multiplied by the replica count.

**Why a custom loop for multi-worker.** With Keras 3.15 and TensorFlow 2.21, ``model.fit`` under
``MultiWorkerMirroredStrategy`` fails (a ``PerReplica`` batch reaches ``_maybe_symbolic_build``,
keras-team/keras#20585), and ``keras.distribution.DataParallel`` does not distribute on the TensorFlow
backend. :func:`fit_custom` therefore runs the model's own ``train_step`` (loss, regularisation, loss
scaling, metrics: exactly what ``fit`` runs) through ``strategy.run`` in a ``tf.function``, drives the
same Keras callbacks as ``fit``, and backs its state up with ``tf.train.CheckpointManager`` so that a
killed cluster relaunched with ``--resume`` continues from the last backup.

**Input sharding.** In a multi-worker run each worker builds its own training pipeline
(``distribute_datasets_from_function``) over its contiguous part of every global batch, in the
epoch's seeded order: workers read disjoint files (file sources) or gather disjoint examples
(in-memory sets), and the global batch of every step is the one a single device would train on.
Epochs hold whole global batches (the remainder of each epoch's order is left out). Validation and
test batches are auto-sharded by data (``AutoShardPolicy.DATA``: each worker reads the split and keeps
its share), so every example counts once in the metrics.

One module, a little over 400 lines: the strategies, their devices and the sharded pipelines, and the
multi-worker loop's backup and restore share the same replica and batch arithmetic, which split apart would
be imported back both ways.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kerasapps.core.errors import RunError, UsageError
from kerasapps.core.schema import STRATEGIES

log = logging.getLogger("kerasapps")

CUSTOM_LOOP = ("multi_worker",)
PARAMETER_SERVER_REFUSAL = (
    "--strategy parameter_server is not supported: Keras 3.15's fit cannot drive ParameterServerStrategy "
    "and kerasapps has no ClusterCoordinator loop yet; use --strategy multi_worker (synchronous, same "
    "TF_CONFIG without 'ps' tasks)")


def tf_config() -> dict:
    """``$TF_CONFIG`` parsed, or ``{}``; a malformed value is a one-line usage error."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"$TF_CONFIG is not valid JSON ({exc})") from None
    if not isinstance(value, dict) or not isinstance(value.get("cluster", {}), dict):
        raise UsageError("$TF_CONFIG must be a JSON object like {\"cluster\": {\"worker\": [...]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": 0}}")
    return value


def task() -> tuple[str, int]:
    """(task type, index) of this process from ``$TF_CONFIG``; ``("worker", 0)`` without one."""
    spec = tf_config().get("task") or {}
    return str(spec.get("type", "worker")), int(spec.get("index", 0))


def is_chief() -> bool:
    """The chief writes the run directory: task ``chief``, or worker 0 when the cluster has no chief."""
    config = tf_config()
    kind, index = task()
    if kind == "chief":
        return True
    has_chief = bool((config.get("cluster") or {}).get("chief"))
    return kind == "worker" and index == 0 and not has_chief


def _tpu_present(tpu: str | None) -> bool:
    return bool(tpu or os.environ.get("TPU_NAME") or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"))


def _connect_tpu(tpu: str | None):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        if tpu not in (None, "", "local"):
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except Exception as exc:  # the resolver raises ValueError, NotFound, InvalidArgument... by environment
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        where = f"at {tpu!r}" if tpu else "(no --tpu ADDRESS and no $TPU_NAME)"
        raise RunError(f"--strategy tpu: no TPU found {where}: {first}") from None
    return tf.distribute.TPUStrategy(resolver)


def get_strategy(name: str = "default", tpu: str | None = None):
    """The ``tf.distribute.Strategy`` for ``name`` (one of :data:`STRATEGIES`); see the module docstring."""
    import tensorflow as tf

    name = (name or "default").lower()
    if name not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")
    if name == "auto":
        if _tpu_present(tpu):
            return _connect_tpu(tpu)
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "tpu":
        return _connect_tpu(tpu)
    if name == "parameter_server":
        raise UsageError(PARAMETER_SERVER_REFUSAL)
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    # multi_worker
    config = tf_config()
    cluster = config.get("cluster") or {}
    if config and cluster.get("ps"):
        raise UsageError("--strategy multi_worker: $TF_CONFIG lists 'ps' tasks; parameter servers are for "
                         "--strategy parameter_server, which is not supported")
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise RunError(f"--strategy multi_worker: cannot start the collective runtime ({first}); choose the "
                       "strategy before anything else touches TensorFlow") from None


def strategy_name(strategy) -> str:
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "one_device"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "default"


def describe(strategy) -> dict:
    """What the manifest records: strategy, replicas (global), workers, this task, devices."""
    name = strategy_name(strategy)
    try:
        devices = list(strategy.extended.worker_devices)
    except (AttributeError, RuntimeError):
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices()][:1]
    kind, index = task()
    cluster = tf_config().get("cluster") or {}
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", [])) if name == "multi_worker" else 1
    return {"name": name, "replicas": int(strategy.num_replicas_in_sync), "workers": max(1, workers),
            "task": f"{kind}:{index}" if name == "multi_worker" else None, "chief": is_chief(),
            "devices": devices}


def uses_custom_loop(strategy) -> bool:
    return strategy_name(strategy) in CUSTOM_LOOP


@dataclasses.dataclass
class Distribution:
    """How one run is spread over devices: its strategy, and what multi-worker training adds.

    ``backup_dir`` (multi-worker runs: ``RUN_DIR/backup``) holds a :class:`Backup` per stage;
    ``resume`` restores from it. ``Distribution.local()`` is TensorFlow's default strategy.
    """

    strategy: Any = None
    backup_dir: Path | None = None
    backup_steps: int | None = None
    resume: bool = False

    @classmethod
    def start(cls, strategy="default", tpu: str | None = None, **fields) -> "Distribution":
        """``strategy`` by name (:data:`STRATEGIES`) or a ``tf.distribute.Strategy``; call it before anything
        else touches TensorFlow (collective ops are configured at program start)."""
        if strategy is None or isinstance(strategy, str):
            strategy = get_strategy(strategy or "default", tpu)
        return cls(strategy, **fields)

    @classmethod
    def local(cls) -> "Distribution":
        import tensorflow as tf

        return cls(tf.distribute.get_strategy())

    @property
    def name(self) -> str:
        return strategy_name(self.strategy)

    @property
    def custom_loop(self) -> bool:
        return self.name in CUSTOM_LOOP

    @property
    def chief(self) -> bool:
        """Whether this process writes the run directory (always, but for a multi-worker run's other workers)."""
        return not self.custom_loop or is_chief()

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def scope(self):
        """Where models, optimizers and metrics are built: ``strategy.scope()``."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def backup(self, stage: str, model) -> "Backup":
        return Backup(self.backup_dir / stage, model, self.chief)

    def describe(self) -> dict:
        return describe(self.strategy)


# ----------------------------------------------------------------------------- custom loop

class Backup:
    """``tf.train.CheckpointManager`` backups of model, optimizer and progress for one stage.

    Every worker saves (a multi-worker save is a collective), the chief into ``directory``, the others
    into a private temporary directory removed at once; every worker restores from ``directory``.
    """

    def __init__(self, directory: Path, model, chief: bool):
        import tensorflow as tf

        self.directory, self.chief = Path(directory), chief
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=self.epoch,
                                              step=self.step)

    def restore(self) -> tuple[int, int] | None:
        """(completed epochs, steps into the next epoch) from the newest backup, or None."""
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(self.directory)) if self.directory.is_dir() else None
        if latest is None:
            return None
        self.checkpoint.restore(latest).expect_partial()
        epoch, step = int(self.epoch.numpy()), int(self.step.numpy())
        log.info("restored backup %s (%d epochs and %d steps done)", latest, epoch, step)
        return epoch, step

    def save(self, epoch: int, step: int) -> None:
        import tensorflow as tf

        self.epoch.assign(epoch)
        self.step.assign(step)
        target = self.directory if self.chief else Path(tempfile.mkdtemp(prefix="kerasapps-backup-"))
        manager = tf.train.CheckpointManager(self.checkpoint, str(target), max_to_keep=1)
        manager.save()
        if not self.chief:
            shutil.rmtree(target, ignore_errors=True)

    def remove(self) -> None:
        if self.chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def _distribute(strategy, dataset):
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _step_function(strategy, step):
    import tensorflow as tf

    @tf.function
    def run(iterator):
        strategy.run(step, args=(next(iterator),))

    return run


def _results_function(strategy, model):
    """Global metric results: each replica's metric state (sync-on-read, summed) all-reduced, read, restored.

    Keras metric variables hold additive state (totals, counts); a replica only sees its own share, so
    the global result sums every replica's state first, as ``fit`` does within one worker.
    """
    import tensorflow as tf

    def replica_results():
        context = tf.distribute.get_replica_context()
        variables = [v for metric in model.metrics for v in metric.variables]
        own = [tf.identity(v.value) for v in variables]
        for variable, value in zip(variables, own):
            variable.assign(context.all_reduce(tf.distribute.ReduceOp.SUM, value))
        results = model.get_metrics_result()
        with tf.control_dependencies(tf.nest.flatten(results)):
            for variable, value in zip(variables, own):
                variable.assign(value)
        return results

    @tf.function
    def run():
        outputs = strategy.run(replica_results)
        return tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0], outputs)

    return lambda: {key: float(value) for key, value in run().items()}


def evaluate_custom(model, strategy, dataset, batches: int, functions=None) -> dict[str, float]:
    """``model.evaluate`` through ``strategy.run(model.test_step)``: the same number of steps on every worker."""
    step_fn, results_fn = functions or (_step_function(strategy, model.test_step), _results_function(strategy, model))
    model.reset_metrics()
    iterator = iter(_distribute(strategy, dataset))
    for _ in range(batches):
        step_fn(iterator)
    return results_fn()


def sharded(strategy, make_batches, global_batch: int, skip_steps: int = 0):
    """The training batches of every worker: ``make_batches(shard=(worker, workers), replica_batch=...)``
    is called on each worker for its own part of every global batch (see
    :func:`kerasapps.data.pipelines.training_dataset`), so each reads only its files; ``skip_steps``
    global steps are left out at the start (a resume from a mid-epoch backup)."""

    def worker_batches(context):
        replica_batch = context.get_per_replica_batch_size(global_batch)
        per_step = global_batch // context.num_input_pipelines // replica_batch  # this worker's replicas
        dataset = make_batches(shard=(context.input_pipeline_id, context.num_input_pipelines),
                               replica_batch=replica_batch)
        return dataset.skip(skip_steps * per_step) if skip_steps else dataset

    return strategy.distribute_datasets_from_function(worker_batches)


def fit_custom(model, strategy, make_batches, global_batch: int, *, epochs: int, initial_epoch: int, steps: int,
               callbacks, verbose: int, backup: Backup, skip_steps: int = 0, backup_steps: int | None = None,
               validation=None):
    """``model.fit`` for strategies it cannot drive; ``validation`` is ``(dataset, batches)`` or None.

    ``make_batches`` builds a worker's training batches for epochs ``initial_epoch..epochs-1``
    (:func:`sharded`); ``skip_steps`` steps of the first are left out (a resume from a mid-epoch backup).
    Backups are written at each epoch end and, with ``backup_steps``, every that many steps.
    """
    import keras

    callback_list = keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose != 0,
                                                 model=model, verbose=verbose, epochs=epochs, steps=steps)
    train_fn, results_fn = _step_function(strategy, model.train_step), _results_function(strategy, model)
    test_fns = (_step_function(strategy, model.test_step), results_fn) if validation is not None else None
    iterator = iter(sharded(strategy, make_batches, global_batch, skip_steps))
    model.stop_training = False
    callback_list.on_train_begin()
    logs: dict[str, Any] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        first = skip_steps if epoch == initial_epoch else 0
        for step in range(first, steps):
            callback_list.on_train_batch_begin(step)
            train_fn(iterator)
            logs = results_fn()  # a collective: every worker asks at every step
            callback_list.on_train_batch_end(step, logs)
            if backup_steps and (step + 1) % backup_steps == 0 and step + 1 < steps:
                backup.save(epoch, step + 1)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        if validation is not None and not model.stop_training:
            callback_list.on_test_begin()  # as fit's validation: SwapEMAWeights scores the averaged weights
            val = evaluate_custom(model, strategy, validation[0], validation[1], test_fns)
            callback_list.on_test_end(val)
            epoch_logs.update({f"val_{key}": value for key, value in val.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if math.isfinite(epoch_logs.get("loss", 0.0)):  # never back up a diverged model
            backup.save(epoch + 1, 0)
        if model.stop_training:
            break
    if epochs > initial_epoch:  # as fit: an optimizer with use_ema leaves its averages in the model
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs)
    return model.history
