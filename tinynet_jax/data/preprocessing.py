"""Pixel conventions every input path shares (the TF pipeline, the on-device augmentation, synthetic data,
inference): timm's normalisation, RandAugment's fill colour and the eval resize-and-crop."""
from __future__ import annotations

import math
import numbers

from tinynet_jax.errors import DataError

# timm's IMAGENET_DEFAULT_MEAN / _STD, applied to [0, 1] pixels.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# timm's RandAugment fill colour: the mean as uint8, `min(255, round(255 * m))` (124, 116, 104).
FILL = tuple(min(255, round(255 * m)) for m in MEAN)
# Eval: resize the short side to floor(res / 0.875), centre-crop res (timm DEFAULT_CROP_PCT).
EVAL_CROP_PCT = 0.875


def check_crop_pct(crop_pct: float) -> float:
  if isinstance(crop_pct, bool) or not isinstance(crop_pct, numbers.Real) or not 0 < crop_pct <= 1:
    raise DataError(f"eval crop_pct must be in (0, 1], got {crop_pct!r}")
  return float(crop_pct)


def eval_resize_size(resolution: int, crop_pct: float = EVAL_CROP_PCT) -> int:
  """Short side before the centre crop: ``floor(res / crop_pct)`` as in timm's eval transform (0.875)."""
  return math.floor(resolution / crop_pct)
