"""The block-string grammar of timm/EfficientNet arch defs, e.g. ``ir_r2_k3_s2_e6_c24_se0.25``.

Tokens (joined by ``_``): the block type first (``ds`` depthwise-separable, ``ir`` inverted residual/MBConv),
then ``r`` repeats, ``k`` depthwise kernel, ``s`` stride of the stage's first block, ``e`` expansion ratio,
``c`` output channels before width scaling, ``se`` squeeze-excite ratio, and the flag ``noskip``.
"""
from __future__ import annotations

import dataclasses
import re

from tinynet_jax.errors import SpecError

BLOCK_KINDS = ("ds", "ir")
_OPTION = re.compile(r"^(se|r|k|s|e|c)(\d+(?:\.\d+)?)$")


@dataclasses.dataclass(frozen=True)
class BlockDef:
  """One arch-def entry: a block configuration repeated `repeats` times (before depth scaling)."""
  kind: str
  repeats: int
  kernel: int
  stride: int
  exp_ratio: float
  channels: int
  se_ratio: float
  skip: bool = True

  def __str__(self) -> str:
    return format_block(self)


def _number(text: str, key: str, value: str, integer: bool) -> float | int:
  if integer:
    if "." in value or int(value) <= 0:
      raise SpecError(f"block {text!r}: {key!r} needs a positive integer, got {value!r}")
    return int(value)
  number = float(value)
  if number < 0:
    raise SpecError(f"block {text!r}: {key!r} must not be negative, got {value!r}")
  return number


def parse_block(text: str) -> BlockDef:
  """Parses one block string; raises `SpecError` naming the offending token."""
  if not isinstance(text, str) or not text:
    raise SpecError(f"block string must be a non-empty str, got {text!r}")
  kind, *tokens = text.split("_")
  if kind not in BLOCK_KINDS:
    raise SpecError(f"block {text!r}: unknown block type {kind!r} (known: {', '.join(BLOCK_KINDS)})")
  options: dict[str, str] = {}
  skip = True
  for token in tokens:
    if token == "noskip":
      skip = False
      continue
    match = _OPTION.match(token)
    if not match:
      raise SpecError(f"block {text!r}: cannot parse token {token!r}")
    key, value = match.groups()
    if key in options:
      raise SpecError(f"block {text!r}: token {key!r} given twice")
    options[key] = value
  required = ("r", "k", "s", "c") + (("e",) if kind == "ir" else ())
  missing = [key for key in required if key not in options]
  if missing:
    raise SpecError(f"block {text!r}: missing {', '.join(missing)}")
  exp_ratio = _number(text, "e", options["e"], integer=False) if "e" in options else 1.0
  if kind == "ds" and exp_ratio != 1.0:
    raise SpecError(f"block {text!r}: a ds block has no expansion (e1)")
  if exp_ratio <= 0:
    raise SpecError(f"block {text!r}: expansion ratio must be positive")
  return BlockDef(
      kind=kind,
      repeats=_number(text, "r", options["r"], integer=True),
      kernel=_number(text, "k", options["k"], integer=True),
      stride=_number(text, "s", options["s"], integer=True),
      exp_ratio=exp_ratio,
      channels=_number(text, "c", options["c"], integer=True),
      se_ratio=_number(text, "se", options.get("se", "0"), integer=False),
      skip=skip,
  )


def _short(number: float) -> str:
  return str(int(number)) if float(number).is_integer() else repr(float(number))


def format_block(block: BlockDef) -> str:
  """The inverse of `parse_block` (canonical token order)."""
  parts = [block.kind, f"r{block.repeats}", f"k{block.kernel}", f"s{block.stride}"]
  parts.append(f"e{_short(block.exp_ratio)}")
  parts.append(f"c{block.channels}")
  if block.se_ratio:
    parts.append(f"se{_short(block.se_ratio)}")
  if not block.skip:
    parts.append("noskip")
  return "_".join(parts)
