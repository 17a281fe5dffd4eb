"""tf.data pipelines for TFDS sources, yielding numpy batches.

Random-access sources (in memory, array_record): a Python generator walks the global schedule
(`schedule.batch_positions` -> `IndexSchedule`) from ``start_step`` and hands this process's rows, with their
global positions, to a deterministic parallel map that decodes and augments each example with seed
``(seed_key(seed), position)``. Global batch k is therefore a pure function of (dataset, seed, k, augment,
resolution, global batch size); process p gets rows [p * B_local, (p + 1) * B_local) of it; resuming skips
indices, not images.

Streaming (TFRecord files too big for memory, e.g. ImageNet-1k prepared the default way) cannot do that
cheaply. Instead: process p reads the files ``files[p::process_count]``; epoch e visits them in an order
shuffled by (seed, e), 16 files interleaved deterministically, through a 10,000-example shuffle buffer seeded
by (seed, e); augmentation is seeded by (seed, global position) as above.
Batches are reproducible for a fixed process count, and resuming at step s starts directly at the right epoch
and skips the remaining ``s * B_local`` modulo epoch-length records of that epoch without decoding them (at most
one epoch of reading). A run with a different process count sees a different (equally valid) order.
"""
from __future__ import annotations

import atexit
import itertools
import weakref
from typing import Iterator

import numpy as np

from tinynet_jax.data.tfdata import augment as aug
from tinynet_jax.data import schedule
from tinynet_jax.data.types import Augment
from tinynet_jax.data.tfdata.sources import SKIP_DECODING, Source
from tinynet_jax.data.tfdata.tfenv import dataset_options, tf
from tinynet_jax.errors import DataError

SHUFFLE_BUFFER = 10_000
INTERLEAVE = 16
_AUTOTUNE = tf.data.AUTOTUNE


def _example_seeds(seed: int, positions):
  """Per-example stateless seeds [seed_key, position] (int64, shape [..., 2])."""
  positions = tf.cast(positions, tf.int64)
  return tf.stack([tf.fill(tf.shape(positions), tf.constant(schedule.seed_key(seed), tf.int64)), positions], -1)


class _Batches:
  """A numpy batch iterator whose tf.data iterator is dropped at exit while Python is still alive (a live
  `from_generator` iterator otherwise logs a spurious error from TensorFlow's finaliser at shutdown)."""

  def __init__(self, ds: tf.data.Dataset):
    self._iterator = ds.as_numpy_iterator()
    _LIVE.add(self)

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      raise StopIteration
    return next(self._iterator)

  def close(self) -> None:
    self._iterator = None


_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
  for batches in list(_LIVE):
    batches.close()


def _finish(ds: tf.data.Dataset, local_batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(2)
  return _Batches(ds.with_options(dataset_options()))


def train_iterator(source: Source, *, global_batch_size: int, local_batch_size: int, resolution: int, seed: int,
                   start_step: int, augment: Augment, process_index: int,
                   process_count: int) -> Iterator[dict[str, np.ndarray]]:
  transform = aug.train_transform(augment, resolution)

  def preprocess(encoded, label, position):
    seeds = _example_seeds(seed, position)
    return {"image": transform(encoded, seeds), "label": label}

  if source.train_mode() == "stream":
    ds = _stream(source, global_batch_size, local_batch_size, seed, start_step, process_index, process_count)
  else:
    table = source.train_table()
    if len(table) == 0:
      raise DataError(f"dataset {source.name!r} split {source.train_split!r} is empty")
    indices_of = schedule.IndexSchedule(seed, len(table))

    def batches():
      for step in itertools.count(start_step):
        positions = schedule.batch_positions(step, global_batch_size, process_index, process_count)
        images, labels = table.fetch(indices_of(positions))
        yield images, labels.astype(np.int32), positions

    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec([local_batch_size], tf.string), tf.TensorSpec([local_batch_size], tf.int32),
        tf.TensorSpec([local_batch_size], tf.int64))).unbatch()
  ds = ds.map(preprocess, num_parallel_calls=_AUTOTUNE, deterministic=True)
  return _finish(ds, local_batch_size)


def _stream(source: Source, global_batch_size: int, local_batch_size: int, seed: int, start_step: int,
            process_index: int, process_count: int) -> tf.data.Dataset:
  """(encoded, label, global position) from this process's TFRecord files; see the module docstring."""
  files, lengths = source.stream_files(source.train_split)
  if len(files) < process_count:
    raise DataError(f"{source.name!r} has {len(files)} train files, fewer than the {process_count} processes "
                    "that stream it; use in_memory=True or fewer processes")
  mine = files[process_index::process_count]
  per_epoch = sum(lengths[process_index::process_count])
  start_epoch, skip = divmod(start_step * local_batch_size, per_epoch)
  key = schedule.seed_key(seed, salt=1)
  features = source.builder.info.features
  names = tf.constant(mine)

  def epoch(e):
    order = tf.random.experimental.stateless_shuffle(tf.range(len(mine)), tf.stack([key, e]))
    files_ds = tf.data.Dataset.from_tensor_slices(tf.gather(names, order))
    records = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(INTERLEAVE, len(mine)),
                                  num_parallel_calls=_AUTOTUNE, deterministic=True)
    return records.shuffle(SHUFFLE_BUFFER, seed=tf.bitwise.bitwise_xor(tf.constant(key, tf.int64), e))

  def parse(local_position, serialized):
    ex = features.deserialize_example(serialized, decoders=SKIP_DECODING)
    step, row = local_position // local_batch_size, local_position % local_batch_size
    position = step * global_batch_size + process_index * local_batch_size + row
    return ex["image"], tf.cast(ex["label"], tf.int32), position

  ds = tf.data.Dataset.range(start_epoch, 1 << 40).flat_map(epoch).skip(skip)
  ds = ds.enumerate(start=start_step * local_batch_size)
  return ds.map(parse, num_parallel_calls=_AUTOTUNE, deterministic=True)


def eval_iterator(source: Source, *, local_batch_size: int, resolution: int, process_index: int,
                  process_count: int, crop_pct: float) -> Iterator[dict[str, np.ndarray]]:
  split = source.eval_split
  n = source.num_examples(split)
  start, stop = schedule.even_split(n, process_index, process_count)
  num_batches = schedule.eval_num_batches(n, local_batch_size, process_count)
  transform = aug.eval_transform(resolution, crop_pct)

  if start == stop:
    ds = None
  elif source.split_info(split) is not None:
    ds = source.read(f"{split}[{start}:{stop}]")
  else:
    table = source.memory_table(split)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(table.images[start:stop], tf.string),
                                             table.labels[start:stop]))

  padding = tf.data.Dataset.from_tensors({
      "image": tf.zeros([resolution, resolution, 3], tf.float32), "label": tf.constant(0, tf.int32),
      "mask": tf.constant(0.0, tf.float32)}).repeat()
  if ds is not None:
    ds = ds.map(lambda encoded, label: {"image": transform(encoded), "label": label,
                                        "mask": tf.constant(1.0, tf.float32)},
                num_parallel_calls=_AUTOTUNE, deterministic=True)
    padding = ds.concatenate(padding)
  return _finish(padding.take(num_batches * local_batch_size), local_batch_size)



def resident_arrays(source: Source, size: int) -> tuple[np.ndarray, np.ndarray]:
  """The train split decoded, short side resized to `size` (bicubic), centre-cropped square, as uint8."""
  table = source.train_table()
  if len(table) == 0:
    raise DataError(f"dataset {source.name!r} split {source.train_split!r} is empty")
  transform = lambda encoded: aug.eval_resize(aug.decode(encoded), size, crop_pct=1.0)  # noqa: E731

  def chunks(step=1024):
    for start in range(0, len(table), step):
      yield table.fetch(np.arange(start, min(start + step, len(table))))

  ds = tf.data.Dataset.from_generator(chunks, output_signature=(
      tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32))).unbatch()
  ds = ds.map(lambda e, label: (transform(e), label), num_parallel_calls=_AUTOTUNE, deterministic=True)
  images, labels = [], []
  for image, label in ds.batch(1024).with_options(dataset_options()).as_numpy_iterator():
    images.append(image)
    labels.append(label)
  return np.concatenate(images), np.concatenate(labels).astype(np.int32)
