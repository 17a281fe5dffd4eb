"""'digits': scikit-learn's `load_digits` as an offline TFDS builder, the project's embedded real dataset.

1,797 8x8 images with 17 grey levels (0-16) of the digits 0-9 (the UCI "optdigits" test set that ships inside
scikit-learn, so nothing is downloaded). Stored as 32x32x3 uint8 PNGs:

* levels -> uint8 as ``(v * 255 + 8) // 16`` (0 -> 0, 16 -> 255);
* upsampled 4x with nearest neighbour: the stored image is exactly the original data (no invented detail), and
  the 4x grid gives random crops quarter-pixel granularity; the pipeline's bicubic resize does the smoothing;
* replicated to 3 channels so the normal RGB pipeline applies.

Split (stratified, fixed, version-independent): within each class, the round(20%) examples whose
``sha256(f"0:{row}")`` (row = index in `load_digits`) is smallest form 'validation', the rest 'train' --
1,438 train / 359 validation, 35-37 validation images per class.
"""
from __future__ import annotations

import hashlib
import importlib.util

import numpy as np

from tinynet_jax.data.tfdata import builders
from tinynet_jax.data.tfdata.tfenv import tfds
from tinynet_jax.errors import DataError

NAME = "tinynet_digits"  # TFDS registry name of the builder below
UPSAMPLE = 4
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0


def load() -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (1797, 32, 32, 3), labels int64 (1797,)) from scikit-learn's bundled copy."""
  from sklearn.datasets import load_digits  # the `data` extra's only reason to need scikit-learn
  digits = load_digits()
  levels = digits.images.astype(np.int64)  # (n, 8, 8), values 0..16
  grey = ((levels * 255 + 8) // 16).astype(np.uint8)
  big = grey.repeat(UPSAMPLE, axis=1).repeat(UPSAMPLE, axis=2)
  return np.repeat(big[..., None], 3, axis=-1), digits.target.astype(np.int64)


def validation_rows(labels: np.ndarray, fraction: float = VALIDATION_FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
  """Sorted row indices of the validation split (see the module docstring)."""
  rows = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    ranked = sorted(members, key=lambda row: hashlib.sha256(f"{seed}:{row}".encode()).hexdigest())
    rows.extend(ranked[:round(fraction * len(members))])
  return np.sort(np.asarray(rows, np.int64))


class TinynetDigits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn digits, 32x32x3, stratified 1438/359 train/validation split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "sklearn load_digits, nearest 4x upsampling, sha256-stratified 80/20 split."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8 * UPSAMPLE, 8 * UPSAMPLE, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
            "row": tfds.features.Scalar(dtype=np.int64, doc="index in sklearn's load_digits"),
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    images, labels = load()
    validation = validation_rows(labels)
    train = np.setdiff1d(np.arange(len(labels)), validation)
    return {"train": self._generate_examples(images, labels, train),
            "validation": self._generate_examples(images, labels, validation)}

  def _generate_examples(self, images, labels, rows):
    for row in rows:
      yield int(row), {"image": images[row], "label": int(labels[row]), "row": int(row)}


def builder(data_dir: str | None) -> tfds.core.DatasetBuilder:
  """The digits builder in `data_dir`, prepared there on first use (a few seconds, no download)."""
  if importlib.util.find_spec("sklearn") is None and not TinynetDigits(data_dir=data_dir).is_prepared():
    raise DataError("dataset 'digits' is built from scikit-learn's copy: pip install scikit-learn "
                    "(part of 'tinynet_jax[data]')")
  return builders.prepare_once(lambda: TinynetDigits(data_dir=data_dir))

