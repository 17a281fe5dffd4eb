"""Inverting the MACs counter: the width (or giant-formula phi) whose rounded network hits a MACs budget.

MACs are a non-decreasing staircase in w (and in phi): channel rounding makes whole intervals of w build the
same network. The solvers find the plateau closest to the target by bisection, then return its extent and the
shortest decimal inside it, so that e.g. TinyNet-C's budget gives back w = 0.54 rather than 0.5371...
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from tinynet_jax.costs.counter import count_macs
from tinynet_jax.errors import SpecError
from tinynet_jax.arch import BASE_RESOLUTION, build_spec, giant_formula
from tinynet_jax.arch.spec import check_multiplier

_BISECT_STEPS = 60


@dataclasses.dataclass(frozen=True)
class Solution:
  """A point on the staircase: `value` lies in the plateau (low, high) that builds a `macs`-MACs network."""
  value: float
  low: float
  high: float
  macs: int
  target: float

  @property
  def relative_error(self) -> float:
    return self.macs / self.target - 1.0


def _edge(macs_of: Callable[[float], int], inside: float, outside: float) -> float:
  """Bisects for the plateau edge between `inside` (on the plateau) and `outside` (off it)."""
  level = macs_of(inside)
  for _ in range(_BISECT_STEPS):
    middle = (inside + outside) / 2
    if middle in (inside, outside):
      break
    if macs_of(middle) == level:
      inside = middle
    else:
      outside = middle
  return (inside + outside) / 2


def _shortest_decimal(macs_of: Callable[[float], int], low: float, high: float, level: int) -> float:
  """The number with the fewest decimals in [low, high] that builds the plateau's network."""
  for digits in range(1, 13):
    scale = 10 ** digits
    for candidate in sorted({math.floor(low * scale) / scale, math.ceil(low * scale) / scale}):
      if 0 < candidate <= high and macs_of(candidate) == level:
        return round(candidate, digits)
  return (low + high) / 2


def _solve(macs_of: Callable[[float], int], target: float, lo: float, hi: float, what: str,
           rtol: float | None) -> Solution:
  if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
    raise SpecError(f"target MACs must be a finite number > 0, got {target!r}")
  if macs_of(lo) >= target:  # the smallest network is already at or above the budget
    below, above = None, lo
  elif macs_of(hi) < target:
    below, above = hi, None
  else:
    below, above = lo, hi  # invariant: macs(below) < target <= macs(above)
    for _ in range(_BISECT_STEPS):
      middle = (below + above) / 2
      if middle in (below, above):
        break
      if macs_of(middle) < target:
        below = middle
      else:
        above = middle
  candidates = [x for x in (below, above) if x is not None]
  best = min(candidates, key=lambda x: (abs(macs_of(x) - target), -x))
  level = macs_of(best)
  low = lo if macs_of(lo) == level else _edge(macs_of, best, lo)
  high = hi if macs_of(hi) == level else _edge(macs_of, best, hi)
  solution = Solution(_shortest_decimal(macs_of, low, high, level), low, high, level, float(target))
  if rtol is not None and abs(solution.relative_error) > rtol:
    raise SpecError(f"no {what} in [{lo:g}, {hi:g}] reaches {target / 1e6:.1f}M MACs within {rtol:.1%} "
                    f"(closest: {level / 1e6:.1f}M)")
  return solution


def solve_width(r: float, d: float, target_macs: float, *, rules: str = "tinynet",
                base_resolution: int = BASE_RESOLUTION, w_range: tuple[float, float] = (0.05, 2.0),
                num_classes: int = 1000, rtol: float | None = None) -> Solution:
  """The width multiplier whose rounded network at (r, d) comes closest to `target_macs`.

  Args:
    rtol: if given, raise `SpecError` when the closest network misses the target by more than this.
  """
  r, d = check_multiplier("r", r), check_multiplier("d", d)
  lo, hi = (check_multiplier("w range", v) for v in w_range)
  if lo >= hi:
    raise SpecError(f"empty w range {w_range}")

  def macs_of(w: float) -> int:
    return count_macs(build_spec(r, d, w, rules=rules, base_resolution=base_resolution),
                      num_classes=num_classes)

  return _solve(macs_of, target_macs, lo, hi, "width", rtol)


def solve_phi(target_macs: float, *, base_resolution: int = BASE_RESOLUTION,
              phi_range: tuple[float, float] = (-8.0, 2.0), num_classes: int = 1000,
              rtol: float | None = None) -> Solution:
  """The compound-scaling coefficient phi (EfficientNet rules) closest to `target_macs`."""
  lo, hi = phi_range
  if not lo < hi:
    raise SpecError(f"empty phi range {phi_range}")

  def macs_of(phi: float) -> int:
    r, d, w = giant_formula(phi)
    return count_macs(build_spec(r, d, w, rules="efficientnet", base_resolution=base_resolution),
                      num_classes=num_classes)

  return _solve(macs_of, target_macs, lo, hi, "phi", rtol)
