"""'digit_mosaic': mosaics of small real digits, so that input resolution carries information (the embedded dataset
for the search; on 'digits' it does not).

On 'digits' each 8x8 digit fills its frame, and a model sees the whole digit at any input size from 4 px up (an
RBF-SVM scores 96% at 4 px, 98% from 8 px). Here an example is a `GRID` x `GRID` mosaic on a `CANVAS` px square:
each cell holds one scikit-learn digit of the example's class (the same 17-level images and the same stratified
split as 'digits'), drawn at a random `CELL_DIGIT` px size (bilinear) at a random place in its 8 px cell, with
random brightness, plus Gaussian pixel noise. At the full canvas every digit is drawn at 6-8 px, about its native
resolution; at ``int(CANVAS * 0.4)`` px each is 2-3 px and its strokes are gone. The evidence is spread over the
whole image, so a small network learns the task in a few hundred steps (an earlier design, one small digit among
clutter, was not learnt at all in 300 steps). `benchmarks/dataset_gate.py` measures what resolution is worth.

* split: 'digits' rows (`digits.validation_rows`), and every digit of a mosaic comes from the example's own split
  (no digit image in both splits); example (row, copy) shows digit `row` in its top-left cell, the other cells
  hold random digits of the same class;
* `TRAIN_COPIES` mosaics per train digit (5,752 examples), `EVAL_COPIES` per validation digit (1,077), so that a
  model's validation top-1 is less noisy than 359 examples would make it;
* deterministic and NumPy-version independent: example (split, row, copy) draws from the legacy
  ``np.random.RandomState([SEED, split, row, copy])``, whose stream NumPy keeps frozen;
* stored as `CANVAS` x `CANVAS` x 3 uint8 PNGs (grey replicated), classes '0'..'9'; preparing it takes ~10 s.
"""
from __future__ import annotations

import functools
import importlib.util

import numpy as np

from tinynet_jax.data.tfdata import builders, digits
from tinynet_jax.data.tfdata.tfenv import tfds
from tinynet_jax.errors import DataError

NAME = "tinynet_digit_mosaic"  # TFDS registry name of the builder below
CANVAS = 32
GRID = 4  # cells per side: CANVAS // GRID = 8 px cells
CELL_DIGIT = (6, 8)  # side of a drawn digit in px, inclusive range
INTENSITY = (0.6, 1.0)  # peak brightness of each digit
NOISE = 0.1  # Gaussian pixel noise, standard deviation on the [0, 1] scale
TRAIN_COPIES, EVAL_COPIES = 4, 3
SEED = 0
SPLITS = {"train": 0, "validation": 1}


@functools.lru_cache(maxsize=None)
def _resize_matrix(size_out: int, size_in: int) -> np.ndarray:
  """(size_out, size_in) bilinear interpolation between pixel centres (edges clamped); read-only, cached."""
  x = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
  low = np.floor(x).astype(np.int64)
  high = np.minimum(low + 1, size_in - 1)
  matrix = np.zeros((size_out, size_in))
  rows = np.arange(size_out)
  np.add.at(matrix, (rows, low), 1 - (x - low))
  np.add.at(matrix, (rows, high), x - low)
  matrix.flags.writeable = False
  return matrix


def _draw(levels: np.ndarray, size: int) -> np.ndarray:
  """An 8x8 image of levels 0..16 as a (size, size) float image in [0, 1]."""
  m = _resize_matrix(size, levels.shape[0])
  return m @ (levels / 16.0) @ m.T


def mosaic(levels: np.ndarray, labels: np.ndarray, row: int, copy: int, split: str, pool: np.ndarray) -> np.ndarray:
  """Mosaic `copy` of digit `row` as uint8 (CANVAS, CANVAS, 3); levels, labels: all of `load_digits`; the other
  cells draw from the rows in `pool` (the split's rows) with the same label."""
  rng = np.random.RandomState([SEED, SPLITS[split], row, copy])
  same = pool[labels[pool] == labels[row]]
  image = np.zeros((CANVAS, CANVAS))
  cell = CANVAS // GRID
  for i in range(GRID):
    for j in range(GRID):
      source = row if (i, j) == (0, 0) else same[rng.randint(len(same))]
      size = rng.randint(CELL_DIGIT[0], CELL_DIGIT[1] + 1)
      top = i * cell + rng.randint(0, cell - size + 1)
      left = j * cell + rng.randint(0, cell - size + 1)
      image[top:top + size, left:left + size] = _draw(levels[source], size) * rng.uniform(*INTENSITY)
  image = np.clip(image + rng.normal(0.0, NOISE, image.shape), 0.0, 1.0)
  grey = np.round(image * 255).astype(np.uint8)
  return np.repeat(grey[..., None], 3, axis=-1)


def split_rows(labels: np.ndarray) -> dict[str, np.ndarray]:
  """The rows of `load_digits` in each split: the split of 'digits'."""
  validation = digits.validation_rows(labels)
  return {"train": np.setdiff1d(np.arange(len(labels)), validation), "validation": validation}


def examples(split: str):
  """Yields (key, row, copy, image uint8, label) of a split, in a fixed order."""
  from sklearn.datasets import load_digits  # like 'digits', built from scikit-learn's bundled copy
  reference = load_digits()
  levels, labels = reference.images.astype(np.float64), reference.target.astype(np.int64)
  rows = split_rows(labels)[split]
  copies = TRAIN_COPIES if split == "train" else EVAL_COPIES
  for row in rows:
    for copy in range(copies):
      image = mosaic(levels, labels, int(row), copy, split, rows)
      yield int(row) * copies + copy, int(row), copy, image, int(labels[row])


class TinynetDigitMosaic(tfds.core.GeneratorBasedBuilder):
  """4x4 mosaics of scikit-learn digits on a 32x32x3 canvas; 5752/1077 train/validation examples."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "digits' split; 4x4 cells, 6-8 px digits, brightness 0.6-1, noise 0.1, 32 px."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(CANVAS, CANVAS, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
            "row": tfds.features.Scalar(dtype=np.int64, doc="index in sklearn's load_digits of the top-left digit"),
            "copy": tfds.features.Scalar(dtype=np.int64, doc="which mosaic of that digit"),
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split):
    for key, row, copy, image, label in examples(split):
      yield key, {"image": image, "label": label, "row": row, "copy": copy}


def builder(data_dir: str | None) -> tfds.core.DatasetBuilder:
  """The builder in `data_dir`, prepared there on first use (seconds, no download)."""
  if importlib.util.find_spec("sklearn") is None and not TinynetDigitMosaic(data_dir=data_dir).is_prepared():
    raise DataError("dataset 'digit_mosaic' is built from scikit-learn's copy of the digits: pip install "
                    "scikit-learn (part of 'tinynet_jax[data]')")
  return builders.prepare_once(lambda: TinynetDigitMosaic(data_dir=data_dir))
