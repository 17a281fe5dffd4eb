"""Input geometry: the resolution check and timm's conv padding, shared by the model, the counters and the data.

Pure Python: the model (`tinynet_jax.models.layers`) pads with `conv_padding`, the MACs counter sizes its
feature maps with `conv_output_size`, and every entry point that takes an input size checks it here.
"""
from __future__ import annotations

import numbers
from typing import Any

from tinynet_jax.errors import SpecError, TinynetError


def check_resolution(value: Any, name: str = "resolution", error: type[TinynetError] = SpecError) -> int:
  """`value` as an int if it is a positive integer (numpy integers too), else `error` (the caller's layer:
  SpecError for a spec, DataError for a data iterator)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
    raise error(f"{name} must be a positive integer, got {value!r}")
  return int(value)


def conv_padding(kernel: int, stride: int) -> int:
  """PyTorch-style symmetric padding ``((stride - 1) + (kernel - 1)) // 2`` on each side (timm's default);
  'SAME' would pad a k3/s2 conv as (0, 1) and shift every feature map of ported weights."""
  return ((stride - 1) + (kernel - 1)) // 2


def conv_output_size(size: int, kernel: int, stride: int) -> int:
  """Output size of a square conv with `conv_padding` on a `size`-pixel input."""
  return (size + 2 * conv_padding(kernel, stride) - kernel) // stride + 1
