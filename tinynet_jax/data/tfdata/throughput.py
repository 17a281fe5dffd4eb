"""Images/s of the ImageNet train transform (JPEG decode + random-resized crop + resize + flip + colour jitter or
RandAugment + erasing) per host CPU core: how many cores one accelerator needs (docs/performance.md).

Input: synthetic JPEGs of ImageNet's typical size (500 x 375, quality 90, smooth random content so that the
files are of realistic size), so it runs anywhere without the dataset.
"""
from __future__ import annotations

import time

import numpy as np

from tinynet_jax.data.tfdata import augment as aug
from tinynet_jax.data import schedule
from tinynet_jax.data.types import Augment
from tinynet_jax.data.tfdata.tfenv import dataset_options, tf

RECIPES = {"paper": Augment(),
           "ra": Augment(color_jitter=0.0, randaugment="rand-m9-mstd0.5", random_erasing=0.2,
                         interpolation="random")}


def synthetic_jpegs(count: int = 64, height: int = 375, width: int = 500, seed: int = 0) -> list[bytes]:
  rng = np.random.default_rng(seed)
  images = []
  for _ in range(count):
    coarse = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3)).astype(np.float32)
    smooth = tf.image.resize(coarse[None], (height, width), method="bicubic")[0]
    noisy = smooth + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    pixels = tf.cast(tf.clip_by_value(noisy, 0, 255), tf.uint8)
    images.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
  return images


def images_per_second(recipe: str, *, threads: int, resolution: int = 224, images: int = 1024,
                      jpegs: list[bytes] | None = None) -> float:
  """Train-transform throughput with a tf.data thread pool of `threads` (one per core)."""
  jpegs = jpegs or synthetic_jpegs()
  transform = aug.train_transform(RECIPES[recipe], resolution)
  key = schedule.seed_key(0)
  ds = tf.data.Dataset.from_tensor_slices(tf.constant(jpegs)).repeat().enumerate()
  ds = ds.map(lambda i, e: transform(e, tf.stack([tf.constant(key, tf.int64), i])),
              num_parallel_calls=threads, deterministic=True)
  options = dataset_options()
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  batches = iter(ds.batch(64).prefetch(2).with_options(options))
  next(batches)  # warm-up: graph tracing and pool start
  start = time.perf_counter()
  for _ in range(images // 64):
    next(batches)
  return (images // 64) * 64 / (time.perf_counter() - start)
