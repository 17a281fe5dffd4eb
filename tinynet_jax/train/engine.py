"""The one engine: a config, a spec, a class count and a mesh -> the model, the train state and the steps.

The training loop, the benchmark (`tinynet_jax.train.benchmark`: the trainer on a synthetic-data config) and
checkpoint evaluation (`tinynet_jax.inference.evaluate`) all build their model and data-parallel steps here, so
what is measured and what is evaluated is exactly what trains.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import threading
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tinynet_jax import data
from tinynet_jax.arch import ModelSpec
from tinynet_jax.models import EfficientNet, create_model, init_variables
from tinynet_jax.train import parallel, steps
from tinynet_jax.train.config import ScheduleLengths, dataset_options, schedule_lengths
from tinynet_jax.train.optim import make_optimizer
from tinynet_jax.train.state import TrainState, create_state


def compute_dtype(name: str):
  if name == "auto":
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
  return jnp.dtype(name)


def augment_from_config(config) -> data.Augment:
  fields = {f.name for f in dataclasses.fields(data.Augment)}
  values = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in config.augment.items()
            if k in fields}
  values["randaugment"] = values.get("randaugment") or None
  return data.Augment(**values)


_RESIDENT: dict = {}  # one device-resident train split per process, reused by every model of a sweep
_RESIDENT_LOCK = threading.Lock()  # a sweep compiles the next model in a thread (train.loop.compile_for)


def resident_dataset(config, mesh) -> dict[str, jax.Array]:
  """The config's whole train split as replicated uint8 device arrays (`data_on_device`), cached per process."""
  size = config.resident_size or config.base_resolution
  options = dataset_options(config)
  key = (config.dataset, config.data_dir, size, tuple(sorted(options.items())), tuple(mesh.devices.flat))
  with _RESIDENT_LOCK:
    if key not in _RESIDENT:
      _RESIDENT.clear()  # free the previous dataset's device memory first
      images, labels = data.resident_train_arrays(config.dataset, size=size, data_dir=config.data_dir, **options)
      _RESIDENT[key] = parallel.replicate_host_arrays(mesh, {"image": images, "label": labels})
    return _RESIDENT[key]


# Compiled programs of recent engines, by (program key, name), shared by engines whose configs differ only in
# fields no program depends on (the seed above all: a sweep model and its replicates, a look-ahead compile and the
# run it prepares), so that such an engine neither traces nor compiles again; with them its abstract state. A
# few: each holds device code. 4 entries a network (init, a train step, eval, the abstract state), so the last 10
# networks: the demo's 6 random models until their replicates, and off CPU 3 speculatively compiled formula
# models beside them.
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_PROGRAMS_LOCK = threading.Lock()
PROGRAMS_KEPT = 40


def _recall(key):
  with _PROGRAMS_LOCK:
    return _PROGRAMS.get(key)


def _remember(key, value) -> None:
  with _PROGRAMS_LOCK:
    _PROGRAMS[key] = value
    while len(_PROGRAMS) > PROGRAMS_KEPT:
      _PROGRAMS.popitem(last=False)


# Config fields that change no compiled program: the seed reaches the steps as an argument (PRNG keys).
NOT_IN_PROGRAM = ("seed", "job", "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                  "keep_checkpoints", "best_metric")


@dataclasses.dataclass(frozen=True)
class Engine:
  """What `create_engine` builds. The steps are `jit(shard_map(...))` functions (`tinynet_jax.train.steps`);
  `program` compiles them (once per program key in this process) for the abstract state and batches below."""
  model: EfficientNet
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  mesh: jax.sharding.Mesh
  abstract_state: TrainState  # shapes, dtypes and (replicated) shardings of the train state
  init: Callable[[], TrainState]  # the initial state, replicated; a pure function of config.seed
  train_step: Callable  # (state, batch) -> (state, TrainMetrics); the state is donated
  resident_train_step: Callable  # (state, index batch, resident dataset) -> (state, TrainMetrics)
  eval_step: Callable  # (state, batch with 'mask') -> EvalMetrics of the raw and the EMA weights
  train_batch: dict[str, jax.ShapeDtypeStruct]  # abstract global batches
  resident_batch: dict[str, jax.ShapeDtypeStruct]
  eval_batch: dict[str, jax.ShapeDtypeStruct]
  step_options: dict[str, Any]  # what the train steps were built with (model, tx, smoothing, EMA, ...)
  program_key: str  # the config (less NOT_IN_PROGRAM), class count, schedule lengths and devices

  def program(self, name: str, resident: dict[str, jax.Array] | None = None) -> Callable:
    """Program `name` compiled: 'init' (called with no argument), 'train', 'resident_train' (on `resident`) or
    'eval', called as the step of that name. Taken from `_PROGRAMS` when an engine of the same program key
    compiled it in this process; compiling reads JAX's persistent compilation cache when that is on."""
    step, args = {
        "init": (self.init.func, self.init.args),
        "train": (self.train_step, (self.abstract_state, self.train_batch)),
        "resident_train": (self.resident_train_step, (self.abstract_state, self.resident_batch, resident)),
        "eval": (self.eval_step, (self.abstract_state, self.eval_batch)),
    }[name]
    key = (self.program_key, name)
    compiled = _recall(key)
    if compiled is None:
      compiled = step.lower(*args).compile()
      _remember(key, compiled)
    if name == "init":
      return functools.partial(compiled, *self.init.args)
    return step.bind(compiled) if isinstance(step, parallel.WithKeys) else compiled

  def compile_ahead(self, executor, resident: dict[str, jax.Array] | None = None) -> tuple[Callable, Callable]:
    """(train_fn(state, batch), eval_fn(state, batch)), compiling in `executor` from now on, so that compiles
    overlap init or restore; with a `resident` dataset, train_fn is the resident step on it."""
    train = executor.submit(self.program, "train" if resident is None else "resident_train", resident)
    evaluate = executor.submit(self.program, "eval")
    extra = () if resident is None else (resident,)
    return (lambda state, batch: train.result()(state, batch, *extra),
            lambda state, batch: evaluate.result()(state, batch))

  def compile_all(self, resident: dict[str, jax.Array] | None = None) -> None:
    """Compiles what a training run will: init, the train step (on `resident` when given) and the eval step,
    so that a run of the same program key takes them from `_PROGRAMS` (`tinynet_jax.train.loop.compile_for`)."""
    for name in ("init", "train" if resident is None else "resident_train", "eval"):
      self.program(name, resident)

  def evaluate(self, state: Any, batches: Iterable[dict[str, np.ndarray]],
               eval_fn: Callable | None = None) -> steps.EvalMetrics:
    """The eval metrics summed over this process's `batches` (`data.eval_iterator`) and every device."""
    eval_fn = eval_fn or self.eval_step
    metrics = None
    for batch in batches:
      update = eval_fn(state, parallel.global_batch(self.mesh, batch))
      metrics = update if metrics is None else metrics.merge(update)
    return metrics


def create_engine(config, spec: ModelSpec, num_classes: int, mesh: jax.sharding.Mesh, *,
                  lengths: ScheduleLengths | None = None) -> Engine:
  """The model, optimizer, initial state and steps of `config` (a `train.config.base_config()` config).

  `lengths` (`train.config.schedule_lengths`) shape the learning-rate schedule; None (evaluation only) takes
  one step per epoch.
  """
  lengths = lengths or schedule_lengths(config, config.batch_size)
  xla_options = parallel.compiler_options(config.fast_compile)
  # .get: a workdir's config.json from before bn_group_size existed (evaluation builds its engine from it).
  bn_group_size = config.get("bn_group_size")
  model = create_model(spec, num_classes, drop_rate=config.drop_rate, drop_path_rate=config.drop_path_rate,
                       dtype=compute_dtype(config.dtype),
                       bn_axis_name=parallel.AXIS if config.sync_bn or bn_group_size else None,
                       depthwise_impl=config.depthwise_impl, bn_group_size=bn_group_size)
  tx, schedule = make_optimizer(config, lengths)
  init_model = create_model(spec, num_classes)  # BN without an axis name: init runs outside shard_map

  def init(key):
    dummy = jnp.zeros((1, spec.resolution, spec.resolution, 3), jnp.float32)
    return create_state(init_variables(init_model, key, dummy, train=False), tx)

  # `init_variables` draws all parameters from two RNG calls: init compile 6.8 s -> 1.5 s on XLA:CPU.
  init_key = jax.random.key(config.seed)
  key = program_key(config, num_classes, lengths, mesh)
  abstract = _recall((key, "abstract_state"))
  if abstract is None:  # tracing the init costs ~1.3 s a sweep model: once per program key, like the programs
    abstract = jax.eval_shape(init, init_key)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=parallel.replicated(mesh)),
                            abstract)
    _remember((key, "abstract_state"), abstract)
  init_fn = jax.jit(init, out_shardings=parallel.replicated(mesh), compiler_options=xla_options)
  keys = {"dropout": jax.random.key(config.seed + 1), "augment": jax.random.key(config.seed + 2)}
  step_options = dict(
      model=model, tx=tx, keys=keys, num_classes=num_classes,
      label_smoothing=config.label_smoothing, exclusive_smoothing=config.exclusive_smoothing,
      ema_decay=config.ema_decay, ema_warmup=config.ema_warmup)
  res = spec.resolution
  image_fields = {"image": ((res, res, 3), jnp.float32), "label": ((), jnp.int32)}
  eval_batch_size = config.eval_batch_size or config.batch_size
  return Engine(
      model=model, tx=tx, schedule=schedule, mesh=mesh, abstract_state=abstract,
      init=functools.partial(init_fn, init_key),
      train_step=parallel.shard_step(steps.train_step, mesh, donate_state=True, options=xla_options,
                                     **step_options),
      resident_train_step=parallel.shard_step(
          steps.resident_train_step, mesh, donate_state=True, options=xla_options, replicated_args=1,
          augment=augment_from_config(config), resolution=res, **step_options),
      eval_step=parallel.shard_step(steps.eval_step, mesh, donate_state=False, options=xla_options, model=model,
                                    num_classes=num_classes),
      train_batch=parallel.batch_struct(mesh, config.batch_size, image_fields),
      resident_batch=parallel.batch_struct(mesh, config.batch_size, {"index": ((), jnp.int32),
                                                                     "position": ((), jnp.uint32)}),
      eval_batch=parallel.batch_struct(mesh, eval_batch_size, {**image_fields, "mask": ((), jnp.float32)}),
      step_options=step_options, program_key=key)


def program_key(config, num_classes: int, lengths: ScheduleLengths, mesh) -> str:
  """What an engine's programs depend on: the config less `NOT_IN_PROGRAM`, the class count, the schedule's
  lengths and the devices."""
  fields = {k: v for k, v in config.to_dict().items() if k not in NOT_IN_PROGRAM}
  return json.dumps([fields, num_classes, dataclasses.asdict(lengths), [d.id for d in mesh.devices.flat]],
                    sort_keys=True, default=str)
