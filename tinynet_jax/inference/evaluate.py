"""Evaluates any checkpoint (converted or trained) on a dataset's eval split with the reference preprocessing.

    python -m tinynet_jax.main --config=configs/eval.py:checkpoint=ckpt/tinynet_a,dataset=imagenet2012 --workdir=DIR

Writes ``DIR/eval_metrics.json`` (top-1/top-5, example count, checkpoint, dataset, resolution) atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tinynet_jax.errors import ConfigError
from tinynet_jax.files import atomic_write_json

EVAL_METRICS = "eval_metrics.json"


def evaluate_checkpoint(config, workdir: str | Path) -> dict[str, Any]:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from tinynet_jax import data
  from tinynet_jax.inference import load_checkpoint
  from tinynet_jax.train.config import dataset_options
  if not config.checkpoint:
    raise ConfigError("set config.checkpoint to a model checkpoint or a training workdir")
  options = dataset_options(config)
  info = data.dataset_info(config.dataset, config.data_dir, **options)
  loaded = load_checkpoint(config.checkpoint, ema=config.ema)
  if loaded.num_classes != info.num_classes:
    raise ConfigError(f"{config.checkpoint} has {loaded.num_classes} classes but dataset {config.dataset!r} has "
                      f"{info.num_classes}")
  resolution = config.resolution or loaded.spec.resolution
  apply = jax.jit(lambda v, x: loaded.model.apply(v, x, train=False))
  correct1 = correct5 = count = 0.0
  k = min(5, info.num_classes)
  for batch in data.eval_iterator(config.dataset, global_batch_size=config.batch_size, resolution=resolution,
                                  data_dir=config.data_dir, crop_pct=config.crop_pct, **options):
    logits = np.asarray(apply(loaded.variables, jnp.asarray(batch["image"])))
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
    hits = top == batch["label"][:, None]
    correct1 += float((hits[:, 0] * batch["mask"]).sum())
    correct5 += float((hits.any(axis=1) * batch["mask"]).sum())
    count += float(batch["mask"].sum())
  result = {"checkpoint": str(config.checkpoint), "source": loaded.source, "model": loaded.spec.label,
            "dataset": config.dataset, "resolution": resolution, "crop_pct": config.crop_pct,
            "examples": int(count), "top1": correct1 / count, "top5": correct5 / count}
  atomic_write_json(Path(workdir) / EVAL_METRICS, result)
  return result
