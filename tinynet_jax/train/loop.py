"""`train_and_evaluate(config, workdir)`: the engine every sweep model and every final TinyNet runs on."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from tinynet_jax import data
from tinynet_jax.data import ondevice
from tinynet_jax.costs import count_macs, count_params
from tinynet_jax.errors import TinynetError
from tinynet_jax.files import atomic_write_json
from tinynet_jax.models import create_model, init_variables
from tinynet_jax.train import parallel, steps
from tinynet_jax.train.checkpointing import Checkpointer, PreemptionFlag
from tinynet_jax.train.config import check_config, dataset_options, model_spec_from_config, schedule_lengths
from tinynet_jax.train.optim import make_optimizer
from tinynet_jax.train.state import create_state
from tinynet_jax.train.writers import MetricWriter

FINAL_METRICS = "final_metrics.json"
CONFIG_FILE = "config.json"


class NonFiniteLossError(TinynetError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


def compute_dtype(name: str):
  if name == "auto":
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32
  return jnp.dtype(name)


def _augment(config) -> data.Augment:
  fields = {f.name for f in dataclasses.fields(data.Augment)}
  values = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in config.augment.items()
            if k in fields}
  values["randaugment"] = values.get("randaugment") or None
  return data.Augment(**values)


_RESIDENT: dict = {}  # one device-resident train split per process, reused by every model of a sweep


def _resident_dataset(config, mesh, options) -> dict[str, jax.Array]:
  size = config.resident_size or config.base_resolution
  key = (config.dataset, config.data_dir, size, tuple(sorted(options.items())), tuple(mesh.devices.flat))
  if key not in _RESIDENT:
    _RESIDENT.clear()  # free the previous dataset's device memory first
    images, labels = data.resident_train_arrays(config.dataset, size=size, data_dir=config.data_dir, **options)
    _RESIDENT[key] = parallel.replicate_host_arrays(mesh, {"image": images, "label": labels})
  return _RESIDENT[key]


def _due(step: int, every: int, total: int) -> bool:
  return step % every == 0 or step == total


def train_and_evaluate(config, workdir: str | Path) -> dict[str, Any]:
  """Trains (resuming from the newest checkpoint in `workdir`), evaluates raw and EMA weights, and writes
  ``config.json``, ``metrics.jsonl``, ``checkpoints/`` and ``final_metrics.json`` there.

  Returns the final metrics; ``{"preempted": True, ...}`` when SIGTERM stopped the run after a checkpoint.
  """
  wall_start = time.time()
  process_index, process_count = jax.process_index(), jax.process_count()
  # Everything that can be wrong with the request is checked before anything is written.
  check_config(config, process_count, jax.device_count())
  spec = model_spec_from_config(config)
  options = dataset_options(config)
  info = data.dataset_info(config.dataset, config.data_dir, **options)
  steps_per_epoch, total_steps = schedule_lengths(config, info.num_train)
  eval_every = config.eval_every_steps or steps_per_epoch
  augment = _augment(config)
  if config.data_on_device:
    ondevice.check_augment(augment)

  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if process_index == 0:
    atomic_write_json(workdir / CONFIG_FILE, config.to_dict())

  mesh = parallel.make_mesh()
  xla_options = parallel.compiler_options(config.fast_compile)
  model = create_model(spec, info.num_classes, drop_rate=config.drop_rate, drop_path_rate=config.drop_path_rate,
                       dtype=compute_dtype(config.dtype), bn_axis_name=steps.AXIS if config.sync_bn else None,
                       depthwise_impl=config.depthwise_impl)
  tx, schedule = make_optimizer(config, steps_per_epoch)
  init_model = create_model(spec, info.num_classes)  # BN without an axis name: init runs outside shard_map

  def init(key):
    dummy = jnp.zeros((1, spec.resolution, spec.resolution, 3), jnp.float32)
    return create_state(init_variables(init_model, key, dummy, train=False), tx)

  # `init_variables` draws all parameters from two RNG calls: init compile 6.8 s -> 1.5 s on XLA:CPU.
  init_key = jax.random.key(config.seed)
  abstract = jax.eval_shape(init, init_key)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=parallel.replicated(mesh)),
                          abstract)
  step_options = dict(
      model=model, tx=tx, rng=jax.random.key(config.seed + 1), num_classes=info.num_classes,
      label_smoothing=config.label_smoothing, exclusive_smoothing=config.exclusive_smoothing,
      ema_decay=config.ema_decay, ema_warmup=config.ema_warmup)
  res = spec.resolution
  image_fields = {"image": ((res, res, 3), jnp.float32), "label": ((), jnp.int32)}
  compiler = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tinynet-compile")
  if config.data_on_device:
    resident = _resident_dataset(config, mesh, options)
    resident_step = parallel.CompileAhead(
        compiler, parallel.shard_step(
            steps.resident_train_step, mesh, donate_state=True, options=xla_options, replicated_args=1,
            augment=augment, resolution=res, augment_key=jax.random.key(config.seed + 2), **step_options),
        abstract, parallel.batch_struct(mesh, config.batch_size, {"index": ((), jnp.int32),
                                                                  "position": ((), jnp.uint32)}), resident)
    train_fn = lambda state, batch: resident_step(state, batch, resident)  # noqa: E731
  else:
    train_fn = parallel.CompileAhead(
        compiler, parallel.shard_step(steps.train_step, mesh, donate_state=True, options=xla_options,
                                      **step_options),
        abstract, parallel.batch_struct(mesh, config.batch_size, image_fields))
  eval_fn = parallel.CompileAhead(
      compiler, parallel.shard_step(steps.eval_step, mesh, donate_state=False, options=xla_options, model=model,
                                    num_classes=info.num_classes),
      abstract, parallel.batch_struct(mesh, config.eval_batch_size or config.batch_size,
                                      {**image_fields, "mask": ((), jnp.float32)}))

  checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints)
  restored = checkpointer.restore_latest(abstract)
  if restored is None:
    init_fn = jax.jit(init, out_shardings=parallel.replicated(mesh), compiler_options=xla_options)
    state, start_step = init_fn(init_key), 0
  else:
    state, start_step = restored
    logging.info("resumed from step %d", start_step)
  data_kwargs = dict(resolution=spec.resolution, data_dir=config.data_dir, process_index=process_index,
                     process_count=process_count, **options)

  def evaluate(state) -> dict[str, float]:
    metrics = None
    batch_size = config.eval_batch_size or config.batch_size
    for batch in data.eval_iterator(config.dataset, global_batch_size=batch_size, crop_pct=config.eval_crop_pct,
                                    **data_kwargs):
      update = eval_fn(state, parallel.global_batch(mesh, batch))
      metrics = update if metrics is None else metrics.merge(update)
    return {k: float(v) for k, v in metrics.compute().items()}

  writer = MetricWriter(workdir)
  preemption = PreemptionFlag()
  if config.data_on_device:
    train_iter = data.resident_index_iterator(
        int(resident["label"].shape[0]), global_batch_size=config.batch_size, seed=config.seed,
        start_step=start_step, process_index=process_index, process_count=process_count)
  else:
    train_iter = data.train_iterator(config.dataset, global_batch_size=config.batch_size, seed=config.seed,
                                     start_step=start_step, augment=augment, **data_kwargs)
  accumulated, eval_metrics, last_eval_step = None, None, None
  timer_step, timer_start = start_step, time.time()
  images_per_second = 0.0

  def check_finite(metrics, step):
    if metrics is not None and float(metrics.finite.compute()) < 1.0:
      raise NonFiniteLossError(f"non-finite loss before step {step}; stopped. The last good checkpoint is "
                               f"kept in {checkpointer.directory}")

  try:
    step = start_step
    while step < total_steps:
      state, update = train_fn(state, parallel.global_batch(mesh, next(train_iter)))
      accumulated = update if accumulated is None else accumulated.merge(update)
      step += 1
      if preemption.reached(step):
        check_finite(accumulated, step)
        checkpointer.save(step, state, wait=True)
        logging.warning("preempted: saved step %d, exiting", step)
        return {"preempted": True, "step": step}
      if _due(step, config.log_every_steps, total_steps):
        check_finite(accumulated, step)
        scalars = accumulated.compute()
        elapsed = time.time() - timer_start
        images_per_second = (step - timer_step) * config.batch_size / max(elapsed, 1e-9)
        scalars.update(lr=float(schedule(step - 1)), images_per_second=images_per_second,
                       steps_per_second=(step - timer_step) / max(elapsed, 1e-9),
                       eta_seconds=(total_steps - step) * elapsed / max(step - timer_step, 1))
        scalars.pop("finite")
        writer.write(step, "train", scalars)
        accumulated, timer_step, timer_start = None, step, time.time()
      if _due(step, eval_every, total_steps):
        eval_metrics, last_eval_step = evaluate(state), step
        writer.write(step, "eval", eval_metrics)
      if _due(step, config.checkpoint_every_steps, total_steps):
        check_finite(accumulated, step)
        checkpointer.save(step, state)
    if last_eval_step != total_steps:  # e.g. resumed after the final save
      eval_metrics = evaluate(state)
    final = {
        "model": spec.label, "r": spec.r, "d": spec.d, "w": spec.w, "resolution": spec.resolution,
        "dataset": config.dataset, "steps": total_steps, "params": count_params(spec, info.num_classes),
        "macs": count_macs(spec, num_classes=info.num_classes), "images_per_second": images_per_second,
        "wall_seconds": time.time() - wall_start, **{k: v for k, v in eval_metrics.items()},
    }
    if process_index == 0:
      atomic_write_json(workdir / FINAL_METRICS, final)
    return final
  finally:
    compiler.shutdown(wait=False, cancel_futures=True)
    checkpointer.close()
    writer.close()
    preemption.restore()
