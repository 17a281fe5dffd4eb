"""Architecture as data: scaling rules and the `ModelSpec` that the model, the FLOPs counter and the weight
converter all read.

A spec is built from an arch def (block strings per stage), the three Rubik's-cube knobs (r, d, w) and a rule
set. It is a frozen, hashable, JSON-serialisable value; nothing here imports jax.
"""
from __future__ import annotations

import dataclasses
import math
from numbers import Real
from typing import Any, Iterable, Sequence

from tinynet_jax.errors import SpecError
from tinynet_jax.arch.geometry import check_resolution
from tinynet_jax.arch.grammar import BlockDef, parse_block
from tinynet_jax.arch.rounding import make_divisible, round_channels, scale_stage_depth

# EfficientNet-B0 (Tan & Le 2019) in timm's grammar: one entry per stage, 16 blocks in all.
EFFICIENTNET_B0_ARCH: tuple[tuple[str, ...], ...] = (
    ("ds_r1_k3_s1_e1_c16_se0.25",),
    ("ir_r2_k3_s2_e6_c24_se0.25",),
    ("ir_r2_k5_s2_e6_c40_se0.25",),
    ("ir_r3_k3_s2_e6_c80_se0.25",),
    ("ir_r3_k5_s1_e6_c112_se0.25",),
    ("ir_r4_k5_s2_e6_c192_se0.25",),
    ("ir_r1_k3_s1_e6_c320_se0.25",),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BASE_RESOLUTION = 224


@dataclasses.dataclass(frozen=True)
class ScalingRules:
  """How (d, w) turn an arch def into layer sizes.

  Attributes:
    depth_trunc: 'round' (Python's round, at least one block) or 'ceil' per stage.
    fix_stem: keep the stem at its base width instead of scaling it with w.
    head_at_least_base: head width is ``max(base, round_channels(base, w))`` rather than scaled freely.
  """
  name: str
  depth_trunc: str
  fix_stem: bool
  head_at_least_base: bool


RULES = {
    # TinyNet (official tinynet.py and timm `_gen_tinynet`): stem fixed at 32, head >= 1280, depth rounded.
    "tinynet": ScalingRules("tinynet", depth_trunc="round", fix_stem=True, head_at_least_base=True),
    # EfficientNet (timm `_gen_efficientnet`): everything scales with w, depth by ceil.
    "efficientnet": ScalingRules("efficientnet", depth_trunc="ceil", fix_stem=False, head_at_least_base=False),
}


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One built block with every size resolved."""
  kind: str  # 'ds' or 'ir'
  in_channels: int
  out_channels: int
  mid_channels: int  # channels of the depthwise conv (expanded for 'ir', = in_channels for 'ds')
  kernel: int
  stride: int
  se_channels: int  # 0 means no squeeze-excite
  skip: bool = True  # the arch def allows a residual

  @property
  def has_residual(self) -> bool:
    return self.skip and self.stride == 1 and self.in_channels == self.out_channels


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A fully resolved network: what every consumer (model, counters, converter) reads."""
  name: str | None
  r: float
  d: float
  w: float
  rules: str
  base_resolution: int
  resolution: int
  stem_channels: int
  head_channels: int
  stages: tuple[tuple[BlockSpec, ...], ...]
  arch: tuple[tuple[str, ...], ...] = EFFICIENTNET_B0_ARCH

  @property
  def blocks(self) -> tuple[BlockSpec, ...]:
    return tuple(block for stage in self.stages for block in stage)

  @property
  def depths(self) -> tuple[int, ...]:
    return tuple(len(stage) for stage in self.stages)

  @property
  def widths(self) -> tuple[int, ...]:
    return tuple(stage[-1].out_channels for stage in self.stages)

  @property
  def label(self) -> str:
    return self.name or f"r{self.r:g}_d{self.d:g}_w{self.w:g}_{self.rules}"

  def with_resolution(self, resolution: int) -> "ModelSpec":
    """The same network evaluated at another input size (the network itself is resolution-free)."""
    return dataclasses.replace(self, resolution=check_resolution(resolution))

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
    try:
      fields = dict(data)
      fields["stages"] = tuple(tuple(BlockSpec(**block) for block in stage) for stage in fields["stages"])
      fields["arch"] = tuple(tuple(stage) for stage in fields["arch"])
      return cls(**fields)
    except (KeyError, TypeError) as e:
      raise SpecError(f"not a model spec: {e}") from None

  def __str__(self) -> str:
    lines = [f"{self.label}: r={self.r:g} d={self.d:g} w={self.w:g} rules={self.rules} "
             f"input={self.resolution}px stem={self.stem_channels} head={self.head_channels}"]
    for index, stage in enumerate(self.stages):
      first = stage[0]
      lines.append(f"  stage {index}: {first.kind} k{first.kernel} s{first.stride} x{len(stage)} "
                   f"{first.in_channels}->{stage[-1].out_channels} (mid {first.mid_channels}, "
                   f"se {first.se_channels})")
    return "\n".join(lines)


def check_multiplier(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
    raise SpecError(f"{name} must be a finite number > 0, got {value!r}")
  return float(value)


def _build_block(block: BlockDef, in_channels: int, out_channels: int, stride: int) -> BlockSpec:
  if block.kind == "ir":
    mid = make_divisible(in_channels * block.exp_ratio)
  else:
    mid = in_channels
  # timm reduces SE from the block input: round(mid * se / exp) (== in * se for our widths).
  se = round(mid * block.se_ratio / block.exp_ratio) if block.se_ratio else 0
  return BlockSpec(kind=block.kind, in_channels=in_channels, out_channels=out_channels, mid_channels=mid,
                   kernel=block.kernel, stride=stride, se_channels=se, skip=block.skip)


def build_spec(r: float = 1.0, d: float = 1.0, w: float = 1.0, *, rules: str = "tinynet",
               arch: Sequence[Iterable[str]] = EFFICIENTNET_B0_ARCH, base_resolution: int = BASE_RESOLUTION,
               resolution: int | None = None, name: str | None = None) -> ModelSpec:
  """Twists the cube: scales `arch` by resolution r, depth d and width w under a rule set."""
  r, d, w = (check_multiplier(k, v) for k, v in (("r", r), ("d", d), ("w", w)))
  if rules not in RULES:
    raise SpecError(f"unknown scaling rules {rules!r} (known: {', '.join(RULES)})")
  rule = RULES[rules]
  base_resolution = check_resolution(base_resolution, "base_resolution")
  if resolution is None:
    resolution = int(base_resolution * r)
    if resolution <= 0:
      raise SpecError(f"r={r:g} gives an input of {base_resolution}*r = 0 pixels")
  resolution = check_resolution(resolution)
  arch = tuple(tuple(stage) for stage in arch)
  if not arch or not all(arch):
    raise SpecError("an arch def needs at least one stage, each with at least one block string")

  stem = STEM_CHANNELS if rule.fix_stem else round_channels(STEM_CHANNELS, w)
  head = round_channels(HEAD_CHANNELS, w)
  if rule.head_at_least_base:
    head = max(HEAD_CHANNELS, head)

  stages = []
  in_channels = stem
  for stage_defs in arch:
    defs = [parse_block(text) for text in stage_defs]
    counts = scale_stage_depth([b.repeats for b in defs], d, rule.depth_trunc)
    blocks = []
    for block_def, count in zip(defs, counts):
      out_channels = round_channels(block_def.channels, w)
      for index in range(count):
        stride = block_def.stride if index == 0 else 1
        blocks.append(_build_block(block_def, in_channels, out_channels, stride))
        in_channels = out_channels
    stages.append(tuple(blocks))
  return ModelSpec(name=name, r=r, d=d, w=w, rules=rules, base_resolution=base_resolution,
                   resolution=resolution, stem_channels=stem, head_channels=head, stages=tuple(stages),
                   arch=arch)
