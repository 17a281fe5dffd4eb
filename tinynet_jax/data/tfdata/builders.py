"""Opening and preparing TFDS builders: readiness checks with one-line fixes, prepare-once under a file lock."""
from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Any, Callable

from absl import logging

from tinynet_jax.data.types import DATASETS
from tinynet_jax.data.tfdata.tfenv import tfds
from tinynet_jax.errors import DataError


def default_data_dir(data_dir: str | None) -> str:
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


@contextlib.contextmanager
def file_lock(path: str):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet():
  """Silences TFDS's absl INFO/WARNING lines (e.g. 'Variant folder ... has no dataset_info.json') while we
  merely probe for data, so that a missing dataset is reported by our one-line error alone."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def prepare_once(make: Callable[[], Any]):
  """Prepares the builder that `make` returns unless already prepared; a lock file next to it keeps
  concurrent processes from preparing the same dataset twice."""
  builder = make()
  if builder.is_prepared():
    return builder
  root = os.path.dirname(os.path.dirname(builder.data_dir))  # <data_dir>/<name>[/<config>]/<version>
  with file_lock(os.path.join(root, f".{builder.name}.lock")):
    builder = make()
    if not builder.is_prepared():
      builder.download_and_prepare()
      builder = make()
  return builder


def readable(builder, split: str) -> bool:
  """True for prepared data, and for data that can be read though not prepared (tfds.testing.mock_data)."""
  with quiet():
    if builder.is_prepared():
      return True
    try:
      builder.as_dataset(split=split)
      return True
    except Exception:  # TFDS raises AssertionError / various errors for missing data
      return False


def open_imagenet2012(data_dir: str | None):
  with quiet():
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
  if not readable(builder, "train"):
    d = default_data_dir(data_dir)
    raise DataError(
        f"imagenet2012 is not prepared in {d}: download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
        f"into {os.path.join(d, 'downloads', 'manual')}/, then run `tfds build imagenet2012 --data_dir={d}` "
        f"(or python -c \"import tensorflow_datasets as tfds; tfds.builder('imagenet2012', data_dir='{d}')"
        ".download_and_prepare()\")")
  return builder


def open_tfds(name: str, data_dir: str | None):
  try:
    with quiet():
      builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # DatasetNotFoundError, bad config names, ...
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DataError(f"unknown dataset {name!r}: neither one of {', '.join(DATASETS)}, folder:PATH nor a TFDS "
                    f"dataset ({first})") from None
  features = builder.info.features
  if not (isinstance(features, tfds.features.FeaturesDict) and "image" in features and "label" in features
          and isinstance(features["image"], tfds.features.Image)
          and isinstance(features["label"], tfds.features.ClassLabel)):
    raise DataError(f"TFDS dataset {name!r} is not an image classification dataset "
                    "(needs an 'image' Image feature and a 'label' ClassLabel feature)")
  if not readable(builder, "train"):
    d = default_data_dir(data_dir)
    raise DataError(f"dataset {name!r} is not prepared in {d}: run `tfds build {name} --data_dir={d}` first "
                    "(this downloads it)")
  return builder
