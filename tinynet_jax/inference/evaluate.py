"""Evaluates any checkpoint (converted or trained) on a dataset's eval split with the reference preprocessing.

    python -m tinynet_jax.main --config=configs/eval.py:checkpoint=ckpt/tinynet_a,dataset=imagenet2012 --workdir=DIR

The scores come from the training engine's own eval step (`tinynet_jax.train.engine`: data-parallel over every
device, top-k in the step, sums psum'd), on the raw and the EMA weights at once; a model checkpoint has one set
of weights, so its raw and EMA scores are equal. A training workdir is evaluated with its own config (compute
dtype included), so the result reproduces the run's final eval; a model checkpoint in float32, as timm evaluates.

Writes ``DIR/eval_metrics.json`` (top-1/top-5 of the chosen weights, ema_top1/ema_top5, example count,
checkpoint, dataset, resolution) atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from tinynet_jax import data
from tinynet_jax.errors import ConfigError
from tinynet_jax.files import atomic_write_json
from tinynet_jax.inference.loading import load_checkpoint
from tinynet_jax.train import parallel
from tinynet_jax.train.config import (DATASET_OPTIONS, Rule, base_config, boolean, check_fields, choice,
                                      dataset_options, interval, optional, optional_text, positive_int, text)
from tinynet_jax.train.engine import create_engine
from tinynet_jax.train.state import TrainState

EVAL_METRICS = "eval_metrics.json"


# What each field of an evaluation config (configs/eval.py) may hold (`train.config.check_fields`).
EVAL_FIELDS: dict[str, Rule] = {
    "job": choice("eval"),
    "checkpoint": Rule("a model checkpoint or a training workdir (a path)", text.accepts),
    "ema": boolean, "best": boolean,
    "dataset": text, "data_dir": optional_text,
    **{f"dataset_options.{k}": DATASET_OPTIONS[k]
       for k in ("num_classes", "num_train", "num_eval", "eval_split", "validation_fraction", "split_seed",
                 "skip_corrupt")},
    "batch_size": positive_int,  # rounded up to a multiple of the device count (padding changes no score)
    "crop_pct": interval("(0, 1]"),
    "resolution": optional(positive_int),  # None: the checkpoint's
}


def check_eval_config(config) -> None:
  check_fields(config, EVAL_FIELDS)


def evaluate_checkpoint(config, workdir: str | Path) -> dict[str, Any]:
  check_eval_config(config)
  options = dataset_options(config)
  info = data.dataset_info(config.dataset, config.data_dir, **options)
  mesh = parallel.make_mesh()
  loaded = load_checkpoint(config.checkpoint, best=config.best,
                           sharding=parallel.replicated(mesh))  # raw, and a workdir's EMA
  if loaded.num_classes != info.num_classes:
    raise ConfigError(f"{config.checkpoint} has {loaded.num_classes} classes but dataset {config.dataset!r} has "
                      f"{info.num_classes}")
  if loaded.label_names and info.label_names and tuple(loaded.label_names) != tuple(info.label_names):
    shown = lambda names: ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")  # noqa: E731
    raise ConfigError(f"{config.checkpoint} was trained on the classes {shown(loaded.label_names)} but dataset "
                      f"{config.dataset!r} has {shown(info.label_names)}")
  resolution = loaded.spec.resolution if config.resolution is None else config.resolution
  # The eval iterator pads the last batch with masked examples, so rounding the batch up to a multiple of the
  # device count changes no score.
  devices = jax.device_count()
  batch_size = -(-config.batch_size // devices) * devices
  if loaded.config is None:
    engine_config = base_config()
    engine_config.dtype = "float32"
  else:
    engine_config = loaded.config
  engine_config.eval_batch_size = batch_size
  engine = create_engine(engine_config, loaded.spec.with_resolution(resolution), loaded.num_classes, mesh)
  raw, averaged = loaded.variables, loaded.ema_variables or loaded.variables
  state = parallel.replicate(mesh, TrainState(
      step=jnp.zeros((), jnp.int32), params=raw["params"], batch_stats=raw.get("batch_stats", {}), opt_state=None,
      ema_params=averaged["params"], ema_batch_stats=averaged.get("batch_stats", {})))
  batches = data.eval_iterator(config.dataset, global_batch_size=batch_size, resolution=resolution,
                               data_dir=config.data_dir, crop_pct=config.crop_pct,
                               process_index=jax.process_index(), process_count=jax.process_count(), **options)
  metrics = engine.evaluate(state, batches)
  scores = {k: float(v) for k, v in metrics.compute().items()}
  prefix = "ema_" if config.ema else ""
  source = loaded.source + (" (EMA)" if config.ema and loaded.ema_variables is not None else "")
  result = {"checkpoint": str(config.checkpoint), "source": source, "model": loaded.spec.label,
            "dataset": config.dataset, "resolution": resolution, "crop_pct": config.crop_pct,
            "examples": int(metrics.top1.count), "top1": scores[prefix + "top1"], "top5": scores[prefix + "top5"],
            "ema_top1": scores["ema_top1"], "ema_top5": scores["ema_top5"]}
  if jax.process_index() == 0:
    atomic_write_json(Path(workdir) / EVAL_METRICS, result)
  return result
