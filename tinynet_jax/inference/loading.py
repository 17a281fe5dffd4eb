"""Loading any checkpoint for inference, the reference eval preprocessing, and class names.

A checkpoint is either a model checkpoint (``python -m tinynet_jax.convert``, `tinynet_jax.checkpoints.save`:
``DIR/tinynet.json``) or a training workdir (``python -m tinynet_jax.main``: ``DIR/config.json`` and
``DIR/checkpoints/<step>``; the newest step, raw or EMA weights).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tinynet_jax.errors import CheckpointError, DataError
from tinynet_jax.arch import ModelSpec

IMAGENET_CLASSES = 1000


@dataclasses.dataclass
class Loaded:
  model: Any  # the Flax module
  variables: dict[str, Any]
  spec: ModelSpec
  num_classes: int
  dataset: str | None  # what it was trained on, when known (training workdirs)
  source: str  # 'model checkpoint' or 'training workdir, step N (EMA)'


def _restore_train_state(directory: Path, ema: bool) -> tuple[dict[str, Any], int]:
  import jax
  import orbax.checkpoint as ocp
  root = directory / "checkpoints"
  steps = sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.is_dir() else []
  if not steps:
    raise CheckpointError(f"{directory} is a training workdir without checkpoints")
  path = (root / str(steps[-1]) / "default").absolute()
  checkpointer = ocp.StandardCheckpointer()
  try:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          checkpointer.metadata(path).item_metadata)
    state = checkpointer.restore(path, target)
  except Exception as e:  # orbax raises assorted types for missing/corrupt items
    raise CheckpointError(f"cannot restore {path}: {type(e).__name__}: {e}") from None
  prefix = "ema_" if ema else ""
  return {"params": state[prefix + "params"], "batch_stats": state[prefix + "batch_stats"]}, steps[-1]


def load_checkpoint(directory: str, *, ema: bool = False, **model_kwargs) -> Loaded:
  """A model checkpoint or a training workdir (its newest step; `ema` picks the EMA weights)."""
  from tinynet_jax.checkpoints import load
  from tinynet_jax.checkpoints.store import METADATA_FILE, read_metadata
  from tinynet_jax.models import create_model
  path = Path(directory)
  if not path.is_dir():
    raise CheckpointError(f"no checkpoint directory at {path}")
  if (path / METADATA_FILE).is_file():
    model, variables, spec = load(path, **model_kwargs)
    return Loaded(model, variables, spec, read_metadata(path).get("num_classes", IMAGENET_CLASSES), None,
                  "model checkpoint")
  config_path = path / "config.json"
  if not config_path.is_file():
    raise CheckpointError(f"{path} is neither a model checkpoint ({METADATA_FILE}) nor a training workdir "
                          "(config.json)")
  import ml_collections
  from tinynet_jax.train.config import model_spec_from_config
  try:
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    spec = model_spec_from_config(config)
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"cannot read {config_path}: {e}") from None
  variables, step = _restore_train_state(path, ema)
  num_classes = int(variables["params"]["classifier"]["kernel"].shape[-1])
  model = create_model(spec, num_classes, **model_kwargs)
  return Loaded(model, variables, spec, num_classes, config.get("dataset"),
                f"training workdir, step {step}{' (EMA)' if ema else ''}")


def preprocess(paths: Sequence[str], resolution: int, crop_pct: float | None = None) -> np.ndarray:
  """Image files -> float32 (N, res, res, 3): timm's eval transform (short side to floor(res / 0.875),
  bicubic, centre crop, ImageNet mean/std)."""
  from tinynet_jax.data.tfdata import augment
  from tinynet_jax.data.preprocessing import EVAL_CROP_PCT
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


def class_names(num_classes: int, dataset: str | None = None) -> list[str]:
  """Names for the classifier's outputs: ImageNet-1k wnids from TFDS's label file (offline), with WordNet lemmas
  when timm's copy is installed; a training dataset's own label names; else 'class k'."""
  if num_classes == IMAGENET_CLASSES and dataset in (None, "imagenet2012"):
    import importlib.resources
    import importlib.util
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
  if dataset:
    try:
      from tinynet_jax import data
      names = data.dataset_info(dataset).label_names
      if names and len(names) == num_classes:
        return list(names)
    except Exception:  # the dataset may not be prepared here: fall back to indices
      pass
  return [f"class {k}" for k in range(num_classes)]
