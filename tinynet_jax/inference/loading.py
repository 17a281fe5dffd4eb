"""Loading any checkpoint for inference, the reference eval preprocessing, and class names.

A checkpoint is either a model checkpoint (``python -m tinynet_jax.convert``, `tinynet_jax.checkpoints.save`:
``DIR/tinynet.json``) or a training workdir (``python -m tinynet_jax.main``: ``DIR/config.json`` and its
checkpoints, read by `tinynet_jax.checkpoints.training`: the newest readable step, or with `best` the best step by
the run's ``best_metric``; raw or EMA weights).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import importlib.util
import json
from pathlib import Path
from typing import Any, Sequence

import ml_collections
import numpy as np

from tinynet_jax import data
from tinynet_jax.arch import ModelSpec
from tinynet_jax.checkpoints import store
from tinynet_jax.checkpoints.training import DEFAULT_BEST_METRIC, restore_best, restore_latest
from tinynet_jax.data.preprocessing import EVAL_CROP_PCT
from tinynet_jax.data.types import DATASET_FILE, DatasetInfo
from tinynet_jax.errors import CheckpointError, DataError
from tinynet_jax.models import EfficientNet, create_model
from tinynet_jax.train.config import model_spec_from_config

IMAGENET_CLASSES = 1000
CONFIG_FILE = "config.json"  # what `tinynet_jax.train.loop` writes into a training workdir


@dataclasses.dataclass
class Loaded:
  model: Any  # the Flax module
  variables: dict[str, Any]
  spec: ModelSpec
  num_classes: int
  dataset: str | None  # what it was trained on, when known (training workdirs)
  source: str  # 'model checkpoint' or 'training workdir, step N (EMA)'
  config: ml_collections.ConfigDict | None = None  # a training workdir's config
  ema_variables: dict[str, Any] | None = None  # a training workdir's EMA weights (both sets are read)
  label_names: tuple[str, ...] | None = None  # a training workdir's class names (its dataset.json), when recorded


def read_training_config(directory: str | Path) -> tuple[ml_collections.ConfigDict, ModelSpec]:
  """A training workdir's config and the spec it trains."""
  path = Path(directory) / CONFIG_FILE
  try:
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    return config, model_spec_from_config(config)
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None


def read_dataset_info(directory: str | Path) -> DatasetInfo | None:
  """The dataset a training workdir recorded (``dataset.json``), or None for a workdir written before it was."""
  path = Path(directory) / DATASET_FILE
  if not path.is_file():
    return None
  try:
    return DatasetInfo.from_dict(json.loads(path.read_text()))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None


def load_checkpoint(directory: str | Path, *, ema: bool = False, best: bool = False, sharding: Any = None,
                    **model_kwargs) -> Loaded:
  """A model checkpoint or a training workdir (its newest readable step, or with `best` its best checkpoint by
  the run's ``best_metric``; `ema` picks the EMA weights as `variables`). `sharding` places a workdir's arrays
  (default: this process's first device)."""
  path = Path(directory)
  if not path.is_dir():
    raise CheckpointError(f"no checkpoint directory at {path}")
  if (path / store.METADATA_FILE).is_file():
    if best:
      raise CheckpointError(f"{path} is a model checkpoint, one set of weights: best applies to a training workdir")
    model, variables, spec = store.load(path, **model_kwargs)
    return Loaded(model, variables, spec, store.read_metadata(path).get("num_classes", IMAGENET_CLASSES), None,
                  "model checkpoint")
  if not (path / CONFIG_FILE).is_file():
    raise CheckpointError(f"{path} is neither a model checkpoint ({store.METADATA_FILE}) nor a training workdir "
                          f"({CONFIG_FILE})")
  config, spec = read_training_config(path)
  if best:
    metric = config.get("best_metric", DEFAULT_BEST_METRIC)
    restored = restore_best(path, best_metric=metric, sharding=sharding)
    if restored is None:
      raise CheckpointError(f"{path} has no best checkpoint (no checkpoint saved with eval metrics)")
  else:
    restored = restore_latest(path, sharding=sharding)
    if restored is None:
      raise CheckpointError(f"{path} is a training workdir without a readable checkpoint")
  state, step = restored
  which = f"best step {step} by {metric}" if best else f"step {step}"
  raw = {"params": state["params"], "batch_stats": state["batch_stats"]}
  averaged = {"params": state["ema_params"], "batch_stats": state["ema_batch_stats"]}
  num_classes = int(raw["params"]["classifier"]["kernel"].shape[-1]) if "classifier" in raw["params"] else 0
  info = read_dataset_info(path)
  return Loaded(create_model(spec, num_classes, **model_kwargs), averaged if ema else raw, spec, num_classes,
                config.get("dataset"), f"training workdir, {which}{' (EMA)' if ema else ''}", config, averaged,
                info.label_names if info is not None else None)


def load(directory: str | Path, *, ema: bool = False, best: bool = False,
         **model_kwargs) -> tuple[EfficientNet, dict[str, Any], ModelSpec]:
  """``model, variables, spec = tinynet_jax.load(dir)`` for any checkpoint this project writes: a model
  checkpoint, or a training workdir's newest readable step (`best`: its best checkpoint; `ema`: its EMA
  weights). `model_kwargs` (e.g. ``dtype=jnp.bfloat16``) configure the returned module; they do not change the
  weights."""
  loaded = load_checkpoint(directory, ema=ema, best=best, **model_kwargs)
  return loaded.model, loaded.variables, loaded.spec


def preprocess(paths: Sequence[str], resolution: int, crop_pct: float | None = None) -> np.ndarray:
  """Image files -> float32 (N, res, res, 3): timm's eval transform (short side to floor(res / 0.875),
  bicubic, centre crop, ImageNet mean/std)."""
  from tinynet_jax.data.tfdata import augment  # TensorFlow: only when images are read
  from tinynet_jax.data.tfdata.tfenv import tf
  transform = augment.eval_transform(resolution, EVAL_CROP_PCT if crop_pct is None else crop_pct)
  images = []
  for path in paths:
    try:
      encoded = Path(path).read_bytes()
      images.append(transform(tf.constant(encoded)).numpy())
    except OSError as e:
      raise DataError(f"cannot read image {path}: {e.strerror or e}") from None
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
      raise DataError(f"cannot decode image {path} (not a JPEG/PNG/GIF/BMP/WebP file?)") from None
  return np.stack(images).astype(np.float32)


def class_names(num_classes: int, dataset: str | None = None,
                label_names: Sequence[str] | None = None) -> list[str]:
  """Names for the classifier's outputs: the names a training workdir recorded (`label_names`, e.g. an image
  folder's class folders); ImageNet-1k wnids from TFDS's label file (offline), with WordNet lemmas when timm's
  copy is installed; a training dataset's own label names; else 'class k'."""
  if label_names and len(label_names) == num_classes:
    return list(label_names)
  if num_classes == IMAGENET_CLASSES and dataset in (None, "imagenet2012"):
    labels = importlib.resources.files("tensorflow_datasets") / "datasets" / "imagenet2012" / "labels.txt"
    wnids = labels.read_text().split()
    lemmas = {}
    # Found, not imported: importing torch after TensorFlow in one process can crash it.
    timm_spec = importlib.util.find_spec("timm")
    if timm_spec and timm_spec.submodule_search_locations:
      lemma_file = Path(timm_spec.submodule_search_locations[0]) / "data" / "_info" / "imagenet_synset_to_lemma.txt"
      if lemma_file.is_file():
        lemmas = dict(line.split("\t", 1) for line in lemma_file.read_text().splitlines() if "\t" in line)
    return [f"{w} ({lemmas[w]})" if w in lemmas else w for w in wnids]
  if dataset and not data.is_folder(dataset):  # a folder is not scanned (and prepared) again for its names
    try:
      names = data.dataset_info(dataset).label_names
      if names and len(names) == num_classes:
        return list(names)
    except Exception:  # the dataset may not be prepared here: fall back to indices
      pass
  return [f"class {k}" for k in range(num_classes)]
