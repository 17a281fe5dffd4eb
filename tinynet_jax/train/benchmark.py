"""Throughput of what trains: the engine's steps built from a synthetic-data training config, and timm's.

Ours is the trainer on a fake-data config (flax's examples/imagenet arrangement): `benchmark_config` is the
paper recipe for a zoo model on 'synthetic' data with ImageNet's 1000 classes, and `ours` times the steps that
`tinynet_jax.train.engine` builds from it, the same programs `train_and_evaluate` runs (dropout, drop path, BN
axis, depthwise implementation, RMSProp-TF with weight decay, EMA with its warm-up, label smoothing).
``train_resident`` is the same step fed from a device-resident uint8 dataset with the augmentation
(random-resized crop, flip) inside the step (`data_on_device`, the sweeps' input path).

timm's step (`theirs`, torch imported lazily) is the same work in PyTorch: channels_last, autocast to the
compute dtype, timm's RMSpropTF, its label-smoothing loss and ModelEmaV3, eager or under `torch.compile`. Times
are wall clock after warm-up, synchronised on the device.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections

from tinynet_jax import data
from tinynet_jax.arch import ModelSpec
from tinynet_jax.train import parallel
from tinynet_jax.train.config import (PAPER, apply_recipe, base_config, dataset_options, model_spec_from_config,
                                     schedule_lengths)
from tinynet_jax.train.engine import create_engine, resident_dataset

MODES = ("train", "eval", "train_resident")
NUM_CLASSES = 1000


def _timed(step: Callable[[], Any], sync: Callable[[Any], None], steps: int, warmup: int) -> float:
  """Seconds per call of `step` after `warmup` calls, synchronised with `sync` on the last output."""
  out = None
  for _ in range(warmup):
    out = step()
  sync(out)
  start = time.perf_counter()
  for _ in range(steps):
    out = step()
  sync(out)
  return (time.perf_counter() - start) / steps


def _peak_memory() -> int | None:
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def benchmark_config(model: str, mode: str, *, batch: int, dtype: str = "auto",
                     resolution: int | None = None) -> ml_collections.ConfigDict:
  """The training config a benchmark measures: zoo `model` under the paper recipe on synthetic ImageNet-sized
  data; 'train_resident' keeps the train split on the device (crop + flip there, as the sweeps train)."""
  if mode not in MODES:
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
  config = base_config()
  config.model = model
  config.resolution = resolution
  apply_recipe(config, "paper", model)
  config.dataset = "synthetic"
  config.dataset_options.num_classes = NUM_CLASSES
  config.batch_size = batch
  config.dtype = dtype
  if mode == "train_resident":
    config.data_on_device = True
    config.resident_size = model_spec_from_config(config).resolution
    config.dataset_options.num_train = max(4 * batch, 1024)
    config.augment.color_jitter = 0.0  # the sweep recipe's on-device part: crop + flip
  return config


def ours(config: ml_collections.ConfigDict, mode: str, *, steps: int, warmup: int) -> dict[str, Any]:
  """Images/s, compile seconds and peak device memory of the engine's `mode` step for a training `config`."""
  spec = model_spec_from_config(config)
  options = dataset_options(config)
  info = data.dataset_info(config.dataset, config.data_dir, **options)
  mesh = parallel.make_mesh()
  engine = create_engine(config, spec, info.num_classes, mesh, lengths=schedule_lengths(config, info.num_train))
  batch, res = config.batch_size, spec.resolution
  if mode == "train_resident":
    resident = resident_dataset(config, mesh)
    rows = data.resident_index_iterator(int(resident["label"].shape[0]), global_batch_size=batch,
                                        seed=config.seed)
    batches = [parallel.global_batch(mesh, next(rows)) for _ in range(4)]
    name = "resident_train"
    args = lambda i: (batches[i % 4], resident)  # noqa: E731
  elif mode == "train":
    one = parallel.global_batch(mesh, next(data.train_iterator(config.dataset, global_batch_size=batch,
                                                               resolution=res, seed=config.seed, **options)))
    name, resident = "train", None
    args = lambda i: (one,)  # noqa: E731
  else:
    one = parallel.global_batch(mesh, next(data.eval_iterator(config.dataset, global_batch_size=batch,
                                                              resolution=res, **options)))
    name, resident = "eval", None
    args = lambda i: (one,)  # noqa: E731

  start = time.perf_counter()
  compiled = engine.program(name, resident)
  compile_seconds = time.perf_counter() - start
  holder = {"state": engine.init(), "i": 0}

  def step():
    holder["i"] += 1
    if mode == "eval":
      return compiled(holder["state"], *args(holder["i"]))
    holder["state"], metrics = compiled(holder["state"], *args(holder["i"]))
    return metrics

  seconds = _timed(step, jax.block_until_ready, steps, warmup)
  return {"images_per_second": batch / seconds, "step_ms": 1e3 * seconds, "compile_seconds": compile_seconds,
          "peak_memory_bytes": _peak_memory()}


def timm_model(spec: ModelSpec, num_classes: int = NUM_CLASSES):
  """timm's own generator at the spec's (d, w) and rules, randomly initialised (nothing is downloaded)."""
  from timm.models.efficientnet import _gen_efficientnet, _gen_tinynet
  if spec.rules == "tinynet":
    return _gen_tinynet("tinynet_a", spec.w, spec.d, pretrained=False, num_classes=num_classes)
  return _gen_efficientnet("efficientnet_b0", spec.w, spec.d, pretrained=False, num_classes=num_classes)


def theirs(spec: ModelSpec, mode: str, timm_mode: str, *, batch: int, dtype: str, steps: int,
           warmup: int) -> dict[str, Any]:
  """timm's images/s for the same network, batch and dtype ('compile' time = the first calls' extra time)."""
  import torch
  from timm.loss import LabelSmoothingCrossEntropy
  from timm.optim import RMSpropTF
  from timm.utils import ModelEmaV3

  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  amp_dtype = {"bfloat16": torch.bfloat16, "float32": None}[
      dtype if dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")]
  torch.manual_seed(0)
  model = timm_model(spec).to(device).to(memory_format=torch.channels_last)
  res = spec.resolution
  x = torch.randn(batch, 3, res, res, device=device).to(memory_format=torch.channels_last)
  y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
  forward = torch.compile(model) if timm_mode == "compile" else model
  autocast = lambda: torch.autocast(device.type, dtype=amp_dtype or torch.float32,  # noqa: E731
                                    enabled=amp_dtype is not None)
  if mode == "train":
    model.train()
    optimizer = RMSpropTF(model.parameters(), lr=PAPER["lr"] * batch / PAPER["lr_batch_size"], alpha=PAPER["rms_decay"],
                          eps=PAPER["opt_eps"], momentum=PAPER["momentum"], weight_decay=PAPER["weight_decay"])
    loss_fn = LabelSmoothingCrossEntropy(PAPER["label_smoothing"])
    ema = ModelEmaV3(model, decay=PAPER["ema_decay"])

    def step():
      with autocast():
        loss = loss_fn(forward(x), y)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      ema.update(model)
      return loss
  else:
    model.eval()

    def step():
      with torch.no_grad(), autocast():
        return forward(x)

  sync = (lambda _: torch.cuda.synchronize()) if device.type == "cuda" else (lambda _: None)
  start = time.perf_counter()
  step()
  sync(None)
  first = time.perf_counter() - start
  seconds = _timed(step, sync, steps, warmup)
  peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
  return {"images_per_second": batch / seconds, "step_ms": 1e3 * seconds,
          "compile_seconds": max(first - seconds, 0.0) if timm_mode == "compile" else None,
          "peak_memory_bytes": peak}


def input_pipeline(resolution: int) -> list[dict[str, Any]]:
  """tf.data train-transform images/s with 1 thread and with one per host core, for both recipes."""
  from tinynet_jax.data.tfdata import throughput  # TensorFlow: only when asked for
  jpegs = throughput.synthetic_jpegs()
  rows = []
  for recipe in throughput.RECIPES:
    for threads in sorted({1, os.cpu_count() or 1}):
      rate = throughput.images_per_second(recipe, threads=threads, resolution=resolution, jpegs=jpegs)
      rows.append({"recipe": recipe, "threads": threads, "resolution": resolution, "images_per_second": rate,
                   "images_per_second_per_core": rate / threads})
  return rows


def environment() -> dict[str, Any]:
  env = {"backend": jax.default_backend(), "devices": [str(d.device_kind) for d in jax.devices()],
         "jax": jax.__version__, "python": platform.python_version()}
  try:
    import timm
    import torch
    env.update(torch=torch.__version__, timm=timm.__version__,
               torch_device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
  except ImportError:
    pass
  return env


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """ours / timm images-per-second for every (model, mode) measured by both ('train_resident' vs timm train)."""
  out = []
  for row in rows:
    if row["impl"] != "tinynet_jax":
      continue
    mode = "train" if row["mode"] == "train_resident" else row["mode"]
    for other in rows:
      if other["model"] == row["model"] and other["impl"] != "tinynet_jax" and other["mode"] == mode:
        out.append({"model": row["model"], "mode": row["mode"], "versus": other["impl"],
                    "ratio": row["images_per_second"] / other["images_per_second"]})
  return out
