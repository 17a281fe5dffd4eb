"""The sweep's models: random twists of (r, d, w) at FLOPs levels, inverse-giant-formula baselines, TinyNets.

A random model at level c is drawn as the paper describes (tinynet.md §1.2-1.3): r and d uniformly at random
within their ranges, then w solved with the exact MACs counter so that the *rounded* network lands within
`tolerance` of ``c x MACs(B0)``; draws whose w falls outside its range, or whose network misses the level or
repeats an earlier one, are rejected and redrawn. Levels are relative to B0 at the same base resolution and
with the same classifier: by default ImageNet's 1000 classes, the paper's FLOPs on any dataset; a small-image
demo counts its own head instead (at 32 px a 1000-way classifier alone is 13% of B0). Everything is a pure
function of the seed.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import numpy as np

from tinynet_jax.arch import TINYNETS, ZOO, ModelSpec, build_spec, giant_formula
from tinynet_jax.costs import FLOPS_CLASSES, count_macs, reference_macs, solve_phi, solve_width
from tinynet_jax.errors import SearchError, SpecError

_DECIMALS = 3  # r and d are drawn on a 0.001 grid: readable ids, and nothing finer changes the network much


@dataclasses.dataclass(frozen=True)
class SweepModel:
  """One network of a sweep: where it sits in the cube and why it is there."""
  id: str
  kind: str  # 'random', 'baseline', 'tinynet' or 'formula'
  level: float | None  # the FLOPs level (c) it was drawn for; None for the TinyNets
  r: float
  d: float
  w: float
  rules: str
  label: str

  def spec(self, base_resolution: int) -> ModelSpec:
    return build_spec(self.r, self.d, self.w, rules=self.rules, base_resolution=base_resolution)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "SweepModel":
    try:
      return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
    except (KeyError, TypeError) as e:
      raise SearchError(f"not a sweep model record: {e}") from None


@dataclasses.dataclass(frozen=True)
class LevelStats:
  level: float
  target_macs: int
  draws: int
  accepted: int

  @property
  def acceptance_rate(self) -> float:
    return self.accepted / max(self.draws, 1)


def model_macs(model: SweepModel, base_resolution: int, num_classes: int = FLOPS_CLASSES) -> int:
  return count_macs(model.spec(base_resolution), num_classes=num_classes)


def _check_range(name: str, bounds: Sequence[float]) -> tuple[float, float]:
  try:
    lo, hi = (float(v) for v in bounds)
  except (TypeError, ValueError):
    raise SearchError(f"{name} must be a (low, high) pair, got {bounds!r}") from None
  if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
    raise SearchError(f"{name} must satisfy 0 < low < high, got {bounds!r}")
  return lo, hi


def check_levels(levels: Iterable[float]) -> tuple[float, ...]:
  levels = tuple(float(c) for c in levels)
  if not levels or any(not (math.isfinite(c) and 0 < c <= 4) for c in levels):
    raise SearchError(f"FLOPs levels must be numbers in (0, 4] relative to B0, got {levels!r}")
  if len(set(levels)) != len(levels):
    raise SearchError(f"FLOPs levels repeat: {levels!r}")
  return levels


def level_name(level: float) -> str:
  return f"L{level:g}"


def sample_random(levels: Iterable[float], per_level: int | Sequence[int], *, r_range: Sequence[float],
                  d_range: Sequence[float], w_range: Sequence[float], tolerance: float, seed: int, base_resolution: int,
                  rules: str = "tinynet", num_classes: int = FLOPS_CLASSES,
                  max_draws: int | None = None) -> tuple[list[SweepModel], list[LevelStats]]:
  """`per_level` random (r, d, w) models at each FLOPs level (one count, or one per level), and the acceptance
  statistics of the draws."""
  levels = check_levels(levels)
  counts = [per_level] * len(levels) if isinstance(per_level, int) else list(per_level)
  if len(counts) != len(levels) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                            for n in counts):
    raise SearchError(f"models per level must be a non-negative integer (or one per level), got {per_level!r}")
  r_lo, r_hi = _check_range("r_range", r_range)
  d_lo, d_hi = _check_range("d_range", d_range)
  w_lo, w_hi = _check_range("w_range", w_range)
  if not 0 < tolerance < 1:
    raise SearchError(f"FLOPs tolerance must be in (0, 1), got {tolerance!r}")
  b0 = reference_macs(base_resolution, num_classes)
  models, stats, seen = [], [], set()
  for index, (level, wanted) in enumerate(zip(levels, counts)):
    rng = np.random.default_rng([seed, index])  # each level its own stream: adding a level changes no other
    target = level * b0
    draws = accepted = 0
    while accepted < wanted:
      if draws >= (max_draws or 50 * wanted + 50):
        raise SearchError(f"level {level:g}: only {accepted} of {wanted} models in {draws} draws; widen "
                          f"r_range/d_range/w_range or the tolerance ({tolerance:.0%})")
      draws += 1
      r = round(float(rng.uniform(r_lo, r_hi)), _DECIMALS)
      d = round(float(rng.uniform(d_lo, d_hi)), _DECIMALS)
      try:
        solution = solve_width(r, d, target, rules=rules, base_resolution=base_resolution, w_range=(w_lo, w_hi),
                               num_classes=num_classes)
      except SpecError:
        continue
      if abs(solution.relative_error) > tolerance:
        continue  # w would have to leave its range (or the staircase skips the level) at this (r, d)
      spec = build_spec(r, d, solution.value, rules=rules, base_resolution=base_resolution)
      if spec in seen:
        continue
      seen.add(spec)
      accepted += 1
      model_id = f"{level_name(level)}-{accepted - 1:03d}"
      models.append(SweepModel(model_id, "random", level, r, d, solution.value, rules, model_id))
    stats.append(LevelStats(level, int(round(target)), draws, accepted))
  return models, stats


def baselines(levels: Iterable[float], *, base_resolution: int, num_classes: int = FLOPS_CLASSES) -> list[SweepModel]:
  """EfficientNet-B^-k: the inverse giant formula with phi solved so that MACs come closest to each level."""
  levels = sorted(check_levels(levels), reverse=True)
  b0 = reference_macs(base_resolution, num_classes)
  models = []
  for k, level in enumerate(levels, start=1):
    phi = solve_phi(level * b0, base_resolution=base_resolution, num_classes=num_classes).value
    r, d, w = (round(v, 6) for v in giant_formula(phi))
    models.append(SweepModel(f"B-{k}", "baseline", level, r, d, w, "efficientnet",
                             f"EfficientNet-B^-{k} (phi={phi:g})"))
  return models


def tinynets() -> list[SweepModel]:
  """TinyNet A-E, trained with the sweep's recipe for comparison."""
  models = []
  for name in TINYNETS:
    entry = ZOO[name]
    models.append(SweepModel(name, "tinynet", None, entry.r, entry.d, entry.w, entry.rules,
                             "TinyNet-" + name[-1].upper()))
  return models


def select(models: Sequence[SweepModel], *, index: int | None = None, shard: str | None = None) -> list[SweepModel]:
  """The models this process trains: all, one (`index`), or the slice ``shard='i/n'`` (models i, i+n, ...)."""
  if index is not None and shard is not None:
    raise SearchError("give either index or shard, not both")
  if index is not None:
    if not 0 <= index < len(models):
      raise SearchError(f"index {index} is out of range: the sweep has {len(models)} models (0..{len(models) - 1})")
    return [models[index]]
  if shard is not None:
    i, n = parse_shard(shard)
    return list(models[i::n])
  return list(models)


def parse_shard(shard: str) -> tuple[int, int]:
  """``'i/n'`` -> (i, n), 0 <= i < n."""
  i, sep, n = str(shard).partition("/")
  try:
    i, n = int(i), int(n)
  except ValueError:
    i = n = -1
  if not isinstance(shard, str) or not sep or not (n >= 1 and 0 <= i < n):
    raise SearchError(f"shard must be 'i/n' with 0 <= i < n, got {shard!r}")
  return i, n
