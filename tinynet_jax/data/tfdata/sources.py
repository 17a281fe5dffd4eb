"""From a dataset name to TFDS data: builders, readiness checks with one-line fixes, and how each split is read.

A train split is read one of three ways (option ``in_memory``; default automatic):

* in memory -- every encoded image in a numpy table, read by index (sizes unknown, e.g. mock data, or the
  split's files total at most `MAX_IN_MEMORY_BYTES`: digits, cifar10, imagenette, ImageNet-100);
* array_record -- a TFDS data source read by index (datasets prepared with ``file_format='array_record'``);
* streaming -- TFRecord files read in order (full ImageNet prepared the default way); see `pipeline`.

The first two give the full determinism contract. Eval splits are read in order, each process its contiguous
range ``split[start:stop]`` (`schedule.even_split`).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import os
from typing import Any, Callable

import numpy as np

from tinynet_jax.data import folder
from tinynet_jax.data.types import DatasetInfo
from tinynet_jax.data.tfdata import builders, digit_mosaic, digits, image_folder, imagenet100
from tinynet_jax.data.tfdata.tfenv import tf, tfds
from tinynet_jax.errors import DataError

MAX_IN_MEMORY_BYTES = 8 << 30
OPTIONS = ("train_split", "eval_split", "in_memory")
SKIP_DECODING = {"image": tfds.decode.SkipDecoding()}
_TABLES: collections.OrderedDict = collections.OrderedDict()  # (data_dir, split) -> MemoryTable, prepared data only
_MAX_TABLES = 2


def _builder(name: str, data_dir: str | None, folder_options: dict):
  if folder.is_folder(name):
    return image_folder.builder(name[len(folder.PREFIX):], data_dir, folder_options)
  if name == "digits":
    return digits.builder(data_dir)
  if name == "digit_mosaic":
    return digit_mosaic.builder(data_dir)
  if name == "imagenet2012":
    return builders.open_imagenet2012(data_dir)
  if name in imagenet100.VARIANTS:
    return imagenet100.builder(name, data_dir)
  return builders.open_tfds(name, data_dir)


class MemoryTable:
  """Encoded images and labels of one split, in host memory."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    self.images, self.labels = images, labels

  def __len__(self) -> int:
    return len(self.labels)

  def fetch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return self.images[indices], self.labels[indices]


class DataSourceTable:
  """A TFDS array_record data source, read by index."""

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def fetch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    records = self.source.__getitems__([int(i) for i in indices])
    images = np.empty(len(records), object)
    images[:] = [r["image"] for r in records]
    return images, np.asarray([r["label"] for r in records], np.int32)


@dataclasses.dataclass
class Source:
  """A TFDS image-classification dataset and how to read it."""
  name: str
  builder: Any
  train_split: str
  eval_split: str
  in_memory: bool | None
  prepared: bool  # False only for data that is readable unprepared (tfds.testing.mock_data)

  @property
  def num_classes(self) -> int:
    return self.builder.info.features["label"].num_classes

  @property
  def label_names(self) -> tuple[str, ...] | None:
    names = self.builder.info.features["label"].names
    return tuple(names) if names else None

  def split_info(self, split: str):
    """TFDS's SplitInfo, or None where sizes are unknown (tfds.testing.mock_data)."""
    if not self.prepared:
      return None
    try:
      return self.builder.info.splits[split]
    except KeyError:
      raise DataError(f"dataset {self.name!r} has no split {split!r} (it has: "
                      f"{', '.join(self.builder.info.splits)})") from None

  def num_examples(self, split: str) -> int:
    info = self.split_info(split)
    return info.num_examples if info is not None else len(self.memory_table(split))

  def train_mode(self) -> str:
    """'memory', 'array_record' or 'stream' for the train split (see the module docstring)."""
    info = self.split_info(self.train_split)
    if self.in_memory or info is None:
      return "memory"
    if self.array_record:
      return "array_record"
    if self.in_memory is None and info.num_bytes <= MAX_IN_MEMORY_BYTES:
      return "memory"
    return "stream"

  @property
  def array_record(self) -> bool:
    return self.prepared and self.builder.info.file_format == tfds.core.file_adapters.FileFormat.ARRAY_RECORD

  def read(self, split: str) -> tf.data.Dataset:
    """(encoded image, label) of a split or sub-split, in stored order."""
    if self.array_record:  # TFDS cannot make a tf.data pipeline from array_record files; walk the source
      table = DataSourceTable(self.builder.as_data_source(split=split, decoders=SKIP_DECODING))

      def chunks(size=256):
        for start in range(0, len(table), size):
          yield table.fetch(np.arange(start, min(start + size, len(table))))

      return tf.data.Dataset.from_generator(chunks, output_signature=(
          tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32))).unbatch()
    ds = self.builder.as_dataset(split=split, shuffle_files=False, decoders=SKIP_DECODING,
                                 read_config=tfds.ReadConfig(try_autocache=False))
    return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))

  def memory_table(self, split: str) -> MemoryTable:
    key = (self.builder.data_dir, split) if self.prepared else None
    if key in _TABLES:
      _TABLES.move_to_end(key)
      return _TABLES[key]
    images, labels = [], []
    for encoded, label in self.read(split).batch(1024).as_numpy_iterator():
      images.extend(encoded)
      labels.append(label)
    table = np.empty(len(images), object)
    table[:] = images
    result = MemoryTable(table, np.concatenate(labels).astype(np.int32) if labels else np.zeros(0, np.int32))
    if key is not None:
      _TABLES[key] = result
      while len(_TABLES) > _MAX_TABLES:
        _TABLES.popitem(last=False)
    return result

  def train_table(self):
    if self.train_mode() == "array_record":
      return DataSourceTable(self.builder.as_data_source(split=self.train_split, decoders=SKIP_DECODING))
    return self.memory_table(self.train_split)

  def stream_files(self, split: str) -> tuple[list[str], list[int]]:
    info = self.split_info(split)
    return [os.fspath(p) for p in info.filepaths], list(info.shard_lengths)


def _default_eval_split(builder, prepared: bool) -> str:
  splits = builder.info.splits if prepared else {}
  for split in ("validation", "test"):
    if split in splits:
      return split
  return "validation"


def open_source(name: str, data_dir: str | None, options: dict) -> Source:
  known = OPTIONS + (folder.OPTIONS if folder.is_folder(name) else ())
  unknown = set(options) - set(known)
  if unknown:
    raise DataError(f"unknown option(s) for dataset {name!r}: {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(known)})")
  in_memory = options.get("in_memory")
  if in_memory is not None and not isinstance(in_memory, bool):
    raise DataError(f"option in_memory must be True, False or None, got {in_memory!r}")
  builder = _builder(name, data_dir, {k: v for k, v in options.items() if k in folder.OPTIONS})
  prepared = builder.is_prepared()
  return Source(name, builder, options.get("train_split", "train"),
                options.get("eval_split") or _default_eval_split(builder, prepared), in_memory, prepared)


def dataset_info(name: str, data_dir: str | None, options: dict) -> DatasetInfo:
  source = open_source(name, data_dir, options)
  return DatasetInfo(name, source.num_classes, source.num_examples(source.train_split),
                     source.num_examples(source.eval_split), source.label_names)
