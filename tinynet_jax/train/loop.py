"""`train_and_evaluate(config, workdir)`: the training loop every sweep model and every final TinyNet runs, on the
steps of `tinynet_jax.train.engine`; resume, preemption, periodic eval, metrics and the final record."""
from __future__ import annotations

import concurrent.futures
import logging
import time
from pathlib import Path
from typing import Any

import jax

from tinynet_jax import data
from tinynet_jax.checkpoints.training import Checkpointer
from tinynet_jax.costs import count_macs, count_params
from tinynet_jax.data import ondevice
from tinynet_jax.data.types import DATASET_FILE
from tinynet_jax.errors import TinynetError
from tinynet_jax.files import atomic_write_json
from tinynet_jax.train import parallel
from tinynet_jax.train.best import BestEvals
from tinynet_jax.train.config import check_config, dataset_options, model_spec_from_config, schedule_lengths
from tinynet_jax.train.engine import augment_from_config, create_engine, resident_dataset
from tinynet_jax.train.preemption import PreemptionFlag
from tinynet_jax.train.writers import MetricWriter

FINAL_METRICS = "final_metrics.json"
CONFIG_FILE = "config.json"


class NonFiniteLossError(TinynetError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


def _due(step: int, every: int, total: int) -> bool:
  return step % every == 0 or step == total


def compile_for(config) -> None:
  """Compiles the programs `train_and_evaluate(config, ...)` will run, without training or writing anything.

  Useful only with JAX's persistent compilation cache on (`parallel.use_compilation_cache`): the sweep runner
  compiles the next model in a thread while the current one trains, so that its run reads the programs back.
  """
  check_config(config, jax.process_count(), jax.device_count())
  spec = model_spec_from_config(config)
  info = data.dataset_info(config.dataset, config.data_dir, **dataset_options(config))
  mesh = parallel.make_mesh()
  resident = resident_dataset(config, mesh) if config.data_on_device else None
  create_engine(config, spec, info.num_classes, mesh,
                lengths=schedule_lengths(config, info.num_train)).compile_all(resident)


def train_and_evaluate(config, workdir: str | Path) -> dict[str, Any]:
  """Trains (resuming from the newest checkpoint in `workdir`), evaluates raw and EMA weights, and writes
  ``config.json``, ``dataset.json`` (sizes, class names), ``metrics.jsonl``, ``checkpoints/`` and
  ``final_metrics.json`` there.

  Returns the final metrics (what ``final_metrics.json`` holds): the final step's eval (``top1``, ``top5``,
  ``ema_top1``, ``ema_top5``, ``loss``), the model's sizes and speed, and

  * ``best``: ``{"raw": {"step", "top1", "top5", "loss"}, "ema": {"step", "top1", "top5"}}``, each set of
    weights' highest top-1 over every eval of the run and that eval's other metrics (`train.best`);
  * ``best_checkpoint``: ``{"metric", "step", "value"}``, the checkpoint kept as the best by
    ``config.best_metric`` (`Checkpointer.restore_best` reads it).

  ``{"preempted": True, ...}`` when SIGTERM stopped the run after a checkpoint.
  """
  wall_start = time.time()
  process_index, process_count = jax.process_index(), jax.process_count()
  # Everything that can be wrong with the request is checked before anything is written.
  check_config(config, process_count, jax.device_count())
  spec = model_spec_from_config(config)
  options = dataset_options(config)
  info = data.dataset_info(config.dataset, config.data_dir, **options)
  lengths = schedule_lengths(config, info.num_train)
  steps_per_epoch, total_steps = lengths.steps_per_epoch, lengths.total_steps
  eval_every = config.eval_every_steps or steps_per_epoch
  augment = augment_from_config(config)
  if config.data_on_device:
    ondevice.check_augment(augment)

  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if process_index == 0:
    atomic_write_json(workdir / CONFIG_FILE, config.to_dict())
    atomic_write_json(workdir / DATASET_FILE, info.to_dict())

  mesh = parallel.make_mesh()
  resident = resident_dataset(config, mesh) if config.data_on_device else None
  engine = create_engine(config, spec, info.num_classes, mesh, lengths=lengths)
  compiler = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tinynet-compile")
  train_fn, eval_fn = engine.compile_ahead(compiler, resident)

  checkpointer = Checkpointer(workdir, keep=config.keep_checkpoints, best_metric=config.best_metric)
  restored = checkpointer.restore_latest(engine.abstract_state)
  if restored is None:
    state, start_step = engine.program("init")(), 0
  else:
    state, start_step = restored
    logging.info("resumed from step %d", start_step)
  best = BestEvals.from_records(workdir, start_step)
  data_kwargs = dict(resolution=spec.resolution, data_dir=config.data_dir, process_index=process_index,
                     process_count=process_count, **options)

  def evaluate(state) -> dict[str, float]:
    batches = data.eval_iterator(config.dataset, global_batch_size=config.eval_batch_size or config.batch_size,
                                 crop_pct=config.eval_crop_pct, **data_kwargs)
    return {k: float(v) for k, v in engine.evaluate(state, batches, eval_fn).compute().items()}

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
      if _due(step, config.log_every_steps, total_steps):
        check_finite(accumulated, step)
        scalars = accumulated.compute()
        elapsed = time.time() - timer_start
        images_per_second = (step - timer_step) * config.batch_size / max(elapsed, 1e-9)
        scalars.update(lr=float(engine.schedule(step - 1)), images_per_second=images_per_second,
                       steps_per_second=(step - timer_step) / max(elapsed, 1e-9),
                       eta_seconds=(total_steps - step) * elapsed / max(step - timer_step, 1))
        scalars.pop("finite")
        writer.write(step, "train", scalars)
        accumulated, timer_step, timer_start = None, step, time.time()
      evaluated = _due(step, eval_every, total_steps)
      # Every eval step is saved too, with its metrics, so that the best eval's weights exist to be kept.
      saving = evaluated or _due(step, config.checkpoint_every_steps, total_steps)
      if saving:
        check_finite(accumulated, step)  # a diverged state is neither evaluated nor saved
      if evaluated:
        eval_metrics, last_eval_step = evaluate(state), step
        writer.write(step, "eval", eval_metrics)
        best.update(step, eval_metrics)
      if saving:
        checkpointer.save(step, state, metrics=eval_metrics if evaluated else None)
      # Checked after the step's log, eval and save, which a resumed run (starting after this step) would skip:
      # a run stopped at an eval step has that eval recorded and its checkpoint ranked, as uninterrupted runs do.
      if preemption.reached(step):
        check_finite(accumulated, step)
        checkpointer.save(step, state, wait=True)
        logging.warning("preempted: saved step %d, exiting", step)
        return {"preempted": True, "step": step}
    if last_eval_step != total_steps:  # e.g. resumed after the final save
      eval_metrics = evaluate(state)
      best.update(total_steps, eval_metrics)
    checkpointer.wait()  # the final save, which may be the best, is written
    kept = best.kept_checkpoint(config.best_metric, checkpointer.best_step())
    if kept is None:  # its eval is not among this run's records: read what was saved with it (~0.8 s)
      kept = checkpointer.best_metrics() or {}  # none: a workdir whose saves predate best checkpoints
    final = {
        "model": spec.label, "r": spec.r, "d": spec.d, "w": spec.w, "resolution": spec.resolution,
        "dataset": config.dataset, "steps": total_steps, "params": count_params(spec, info.num_classes),
        "macs": count_macs(spec, num_classes=info.num_classes), "images_per_second": images_per_second,
        "wall_seconds": time.time() - wall_start, **{k: v for k, v in eval_metrics.items()},
        "best": best.to_dict(),
        "best_checkpoint": {"metric": config.best_metric, "step": kept.get("step"),
                            "value": kept.get(config.best_metric)},
    }
    if process_index == 0:
      atomic_write_json(workdir / FINAL_METRICS, final)
    return final
  finally:
    compiler.shutdown(wait=False, cancel_futures=True)
    checkpointer.close()
    writer.close()
    preemption.restore()
