"""The rounding rules that decide a scaled network's exact shape (timm / official TinyNet semantics).

These must match the reference bit for bit: parameter counts, MACs and weight import all depend on them.
"""
from __future__ import annotations

import math
from typing import Sequence


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
  """Rounds to the nearest multiple of `divisor` (halves up), never going below `round_limit` of `value`."""
  min_value = min_value or divisor
  rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if rounded < round_limit * value:  # rounding down lost more than 10%: take the next multiple
    rounded += divisor
  return rounded


def round_channels(channels: int, multiplier: float, divisor: int = 8) -> int:
  """Width scaling of one layer: ``make_divisible(channels * multiplier)``; a zero multiplier keeps it."""
  if not multiplier:
    return channels
  return make_divisible(channels * multiplier, divisor)


def scale_stage_depth(repeats: Sequence[int], multiplier: float, trunc: str) -> list[int]:
  """Scales the repeats of one stage's block defs.

  The stage total is scaled with Python's ``round`` (half to even; TinyNet, at least one block) or ``ceil``
  (EfficientNet), then shared back over the block defs proportionally, last def first, so that the first
  def (usually the strided one) is the last to grow.
  """
  total = sum(repeats)
  if trunc == "round":
    scaled_total = max(1, round(total * multiplier))
  elif trunc == "ceil":
    scaled_total = int(math.ceil(total * multiplier))
  else:
    raise ValueError(f"unknown depth truncation {trunc!r}")
  scaled = []
  for count in reversed(repeats):
    share = max(1, round(count / total * scaled_total))
    scaled.append(share)
    total -= count
    scaled_total -= share
  return scaled[::-1]
