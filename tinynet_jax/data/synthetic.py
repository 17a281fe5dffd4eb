"""'synthetic': deterministic, learnable random images in numpy, without TensorFlow.

For the GPU box without TensorFlow and for throughput benchmarks. Example ``i`` of a split has label
``hash(split, i) % num_classes`` and image = its class's random 4x4 colour pattern (nearest-upsampled to the
resolution) + one of eight fixed noise images, then the usual mean/std normalisation. The data never depend on
the seed; the seed only shuffles (same schedule as every other source), and no augmentation is applied.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from tinynet_jax.data import schedule
from tinynet_jax.data.preprocessing import MEAN, STD
from tinynet_jax.data.types import DatasetInfo
from tinynet_jax.errors import DataError

DEFAULTS = dict(num_classes=1000, num_train=1_281_167, num_eval=50_000)  # ImageNet-1k's sizes
_TRAIN, _EVAL = 0, 1
_NOISE_IMAGES = 8
_GRID = 4


def options(**kwargs) -> dict[str, int]:
  unknown = set(kwargs) - set(DEFAULTS)
  if unknown:
    raise DataError(f"unknown option(s) for dataset 'synthetic': {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(DEFAULTS)})")
  values = dict(DEFAULTS, **kwargs)
  for key, value in values.items():
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
      raise DataError(f"synthetic option {key} must be a positive integer, got {value!r}")
  return {k: int(v) for k, v in values.items()}


def info(**kwargs) -> DatasetInfo:
  o = options(**kwargs)
  return DatasetInfo("synthetic", o["num_classes"], o["num_train"], o["num_eval"])


def _unit(h: np.ndarray) -> np.ndarray:
  """uint64 hashes -> floats in [0, 1)."""
  return (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


class _Images:
  """Renders examples of one split at one resolution."""

  def __init__(self, split: int, num_classes: int, resolution: int):
    self.split, self.num_classes = split, num_classes
    self.cells = (np.arange(resolution) * _GRID) // resolution  # nearest upsampling of the 4x4 pattern
    noise = _unit(schedule.hash_ints(split, 7, np.arange(_NOISE_IMAGES * resolution * resolution * 3)))
    self.noise = ((noise - 0.5) * 0.4).reshape(_NOISE_IMAGES, resolution, resolution, 3)
    self.mean, self.std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)

  def labels(self, indices: np.ndarray) -> np.ndarray:
    return (schedule.hash_ints(self.split, indices) % np.uint64(self.num_classes)).astype(np.int32)

  def __call__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = self.labels(indices)
    pattern = _unit(schedule.hash_ints(3, labels[:, None], np.arange(_GRID * _GRID * 3)))
    pattern = 0.2 + 0.6 * pattern.reshape(-1, _GRID, _GRID, 3)
    image = pattern[:, self.cells][:, :, self.cells]
    image += self.noise[schedule.hash_ints(self.split, 11, indices) % np.uint64(_NOISE_IMAGES)]
    return ((image - self.mean) / self.std).astype(np.float32), labels


def train_batches(*, global_batch_size: int, local_batch_size: int, resolution: int, seed: int,
                  start_step: int, process_index: int, process_count: int,
                  **kwargs) -> Iterator[dict[str, np.ndarray]]:
  o = options(**kwargs)
  render = _Images(_TRAIN, o["num_classes"], resolution)
  indices_of = schedule.IndexSchedule(seed, o["num_train"])
  step = start_step
  while True:
    positions = schedule.batch_positions(step, global_batch_size, process_index, process_count)
    image, label = render(indices_of(positions))
    yield {"image": image, "label": label}
    step += 1


def train_arrays(size: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """The whole train split as uint8 images (the normalisation undone) and labels, for on-device training."""
  o = options(**kwargs)
  image, label = _Images(_TRAIN, o["num_classes"], size)(np.arange(o["num_train"]))
  pixels = (image * np.asarray(STD, np.float32) + np.asarray(MEAN, np.float32)) * 255.0
  return np.clip(np.round(pixels), 0, 255).astype(np.uint8), label


def eval_batches(*, local_batch_size: int, resolution: int, process_index: int, process_count: int,
                 **kwargs) -> Iterator[dict[str, np.ndarray]]:
  o = options(**kwargs)
  render = _Images(_EVAL, o["num_classes"], resolution)
  start, stop = schedule.even_split(o["num_eval"], process_index, process_count)
  for b in range(schedule.eval_num_batches(o["num_eval"], local_batch_size, process_count)):
    rows = np.arange(start + b * local_batch_size, start + (b + 1) * local_batch_size)
    mask = rows < stop
    image, label = render(np.where(mask, rows, start))
    image[~mask] = 0.0
    label[~mask] = 0
    yield {"image": image, "label": label, "mask": mask.astype(np.float32)}
