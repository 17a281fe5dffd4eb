"""Input pipelines: ImageNet-1k, ImageNet-100, digits, digit mosaics, any TFDS image-classification dataset, a
folder of images ('folder:PATH', `folder`), and synthetic data.

    info = data.dataset_info("digits")
    for batch in data.train_iterator("digits", global_batch_size=64, resolution=32, seed=0):
      batch["image"]  # float32 (B_local, 32, 32, 3), ImageNet mean/std normalised; batch["label"] int32

Determinism contract (what bit-exact resume and "2 processes == 1 process" rely on): global train batch k is a
pure function of (dataset, seed, k, augment, resolution, global_batch_size), whatever the process count;
process p yields rows [p * B_local, (p + 1) * B_local) of it; ``start_step=s`` yields batches s, s+1, ... without
decoding the skipped ones. Epoch e's order is a hash permutation of (seed, e); every augmentation draw is a
stateless op seeded by (seed, global position of the example). This holds for 'synthetic', the digits datasets and
every dataset read in memory or from array_record (see `sources`); full ImageNet streamed from TFRecords is
reproducible for a fixed process count only (see `pipeline`).

Eval iterators are finite, pad with ``mask == 0`` rows, yield the same number of batches on every process, and
together cover every eval example exactly once.

Importing this package never imports TensorFlow: 'synthetic' is pure numpy, and everything else loads TF (with
GPUs hidden from it) on first use.
"""
from __future__ import annotations

import importlib
import itertools
from typing import Iterator

import numpy as np

from tinynet_jax.arch import check_resolution
from tinynet_jax.data import schedule, synthetic
from tinynet_jax.data.preprocessing import EVAL_CROP_PCT, check_crop_pct
from tinynet_jax.data.folder import is_folder
from tinynet_jax.data.schedule import local_batch_size
from tinynet_jax.data.types import DATASETS, Augment, DatasetInfo
from tinynet_jax.errors import DataError

__all__ = ["Augment", "DatasetInfo", "DATASETS", "is_folder", "dataset_info", "train_iterator", "eval_iterator",
           "resident_train_arrays", "resident_index_iterator"]


def _tf_module(name: str, module: str):
  """Imports a TF-backed submodule, turning a missing TensorFlow into a one-line DataError."""
  if not isinstance(name, str) or not name:
    raise DataError(f"dataset name must be a non-empty string, got {name!r}")
  try:
    return importlib.import_module(f"tinynet_jax.data.tfdata.{module}")
  except ModuleNotFoundError as e:
    if e.name and e.name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
      raise DataError(f"dataset {name!r} needs the data extra (pip install 'tinynet_jax[data]'): {e}") from None
    raise


def _check_int(name: str, value, minimum: int | None = None) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (minimum is not None and value < minimum):
    raise DataError(f"{name} must be an integer{'' if minimum is None else f' >= {minimum}'}, got {value!r}")
  return int(value)


def dataset_info(name: str, data_dir: str | None = None, **options) -> DatasetInfo:
  """Class count, split sizes and label names of a dataset (prepares the digits datasets / ImageNet-100 / an image
  folder on first use)."""
  if name == "synthetic":
    return synthetic.info(**options)
  return _tf_module(name, "sources").dataset_info(name, data_dir, options)


def train_iterator(name: str, *, global_batch_size: int, resolution: int, seed: int, start_step: int = 0,
                   augment: Augment = Augment(), data_dir: str | None = None, process_index: int = 0,
                   process_count: int = 1, **options) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of this process's rows of each global train batch, from global batch `start_step` on.

  Yields {'image': float32 (B_local, res, res, 3), 'label': int32 (B_local,)}, B_local = global_batch_size //
  process_count.
  """
  local = local_batch_size(global_batch_size, process_index, process_count)
  resolution = check_resolution(resolution, error=DataError)
  start_step = _check_int("start_step", start_step, minimum=0)
  seed = _check_int("seed", seed)
  if not isinstance(augment, Augment):
    raise DataError(f"augment must be a tinynet_jax.data.Augment, got {type(augment).__name__}")
  common = dict(global_batch_size=global_batch_size, local_batch_size=local, resolution=resolution, seed=seed,
                start_step=start_step, process_index=process_index, process_count=process_count)
  if name == "synthetic":
    return synthetic.train_batches(**common, **options)
  source = _tf_module(name, "sources").open_source(name, data_dir, options)
  return _tf_module(name, "pipeline").train_iterator(source, augment=augment, **common)


def eval_iterator(name: str, *, global_batch_size: int, resolution: int, data_dir: str | None = None,
                  process_index: int = 0, process_count: int = 1, crop_pct: float = EVAL_CROP_PCT,
                  **options) -> Iterator[dict[str, np.ndarray]]:
  """Finite iterator over this process's share of the eval split, padded to a count shared by all processes.

  Yields {'image', 'label', 'mask'}; mask is 1.0 for real examples and 0.0 for padding (zero images, label 0).
  Preprocessing: short side to floor(res / crop_pct) (timm's 0.875), bicubic, centre crop res x res.
  """
  local = local_batch_size(global_batch_size, process_index, process_count)
  resolution = check_resolution(resolution, error=DataError)
  crop_pct = check_crop_pct(crop_pct)
  common = dict(local_batch_size=local, resolution=resolution, process_index=process_index,
                process_count=process_count)
  if name == "synthetic":
    return synthetic.eval_batches(**common, **options)
  source = _tf_module(name, "sources").open_source(name, data_dir, options)
  return _tf_module(name, "pipeline").eval_iterator(source, crop_pct=crop_pct, **common)


def resident_train_arrays(name: str, *, size: int, data_dir: str | None = None,
                          **options) -> tuple[np.ndarray, np.ndarray]:
  """The whole train split as (uint8 (N, size, size, 3), int32 (N,)), for `data_on_device` training.

  Each image is resized (short side to `size`, bicubic, antialiased) and centre-cropped to a square; the
  on-device random-resized crop (`tinynet_jax.data.ondevice`) then works on that square. Not cached here: the
  training loop keeps the device copy for every model of a process.
  """
  size = check_resolution(size, error=DataError)
  if name == "synthetic":
    return synthetic.train_arrays(size, **options)
  source = _tf_module(name, "sources").open_source(name, data_dir, options)
  return _tf_module(name, "pipeline").resident_arrays(source, size)


def resident_index_iterator(num_train: int, *, global_batch_size: int, seed: int, start_step: int = 0,
                            process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """This process's rows of each global batch as {'index': int32, 'position': uint32}, for a resident dataset.

  The same schedule as `train_iterator` (global batch k is a pure function of seed and k); positions seed the
  on-device augmentation (modulo 2^32).
  """
  local_batch_size(global_batch_size, process_index, process_count)  # checks the split
  indices_of = schedule.IndexSchedule(_check_int("seed", seed), _check_int("num_train", num_train, minimum=1))
  for step in itertools.count(_check_int("start_step", start_step, minimum=0)):
    positions = schedule.batch_positions(step, global_batch_size, process_index, process_count)
    yield {"index": indices_of(positions).astype(np.int32),
           "position": (positions % (1 << 32)).astype(np.uint32)}
