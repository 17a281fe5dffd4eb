"""The tiny formula: r = R(c) and d = D(c) by Gaussian-process regression on the frontier, w from the budget.

c is a model's MACs relative to EfficientNet-B0 at the same base resolution (1000-class head). The GPs take
x = log(c): the sweep's levels are geometric (0.5, 0.25, ...), so log c spaces the frontier evenly and one
length scale fits the whole range. Given a budget, the formula reads r and d off the GP means, then solves w
with the exact MACs counter on the rounded network (tinynet.md §1.4: the closed form w = sqrt(c / (r² d))
misses the real MACs by up to 50% because of the fixed stem and head and channel rounding).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from tinynet_jax.arch import BASE_RESOLUTION, TINYNETS, ZOO, ModelSpec, build_spec, model_spec
from tinynet_jax.costs import FLOPS_CLASSES, count_macs, count_params, reference_macs, solve_width
from tinynet_jax.errors import SearchError, SpecError
from tinynet_jax.files import atomic_write_json
from tinynet_jax.search.gp import GPFit, fit_gp

FORMAT = "tinynet_jax.formula/2"
OLD_FORMATS = ("tinynet_jax.formula/1",)  # still read: no fitted-point rule, dataset or c tolerance recorded
PUBLISHED = "published"  # the selection rule of the paper preset: a curve through points, not a measurement
MAX_BUDGET_ERROR = 0.05  # a budget whose closest network is further off than this is unreachable
_MULTIPLIER_RANGE = (0.05, 4.0)  # where GP means are clipped, so an extrapolation still builds a network


@dataclasses.dataclass(frozen=True)
class FormulaModel:
  """The formula's network for one budget."""
  target_macs: float
  c: float
  r: float
  r_std: float | None  # GP posterior std of the fitted curve at c; None for the preset (no uncertainty)
  d: float
  d_std: float | None
  w: float
  rules: str
  base_resolution: int
  resolution: int
  macs: int
  params: int
  extrapolated: bool  # c lies outside the fitted points' c range, widened by the formula's c_tolerance

  def spec(self) -> ModelSpec:
    return build_spec(self.r, self.d, self.w, rules=self.rules, base_resolution=self.base_resolution)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Formula:
  r_fit: GPFit
  d_fit: GPFit
  b0_macs: int  # MACs of B0 at base_resolution: the unit of c
  base_resolution: int
  rules: str
  num_classes: int  # the classifier the MACs are counted with (1000: the paper's FLOPs)
  points: tuple[dict[str, Any], ...]  # the models it was fitted on: id, c, r, d, w, macs, accuracy
  source: str  # what produced it, e.g. "sweep runs/x (digits)" or "paper preset (TinyNet A-E)"
  # How the points were chosen: {"rule": "top_k" | "eps_frontier" | "published", "description", "metric", "k" |
  # "eps"}; None in files written before format 2.
  selection: dict[str, Any] | None = None
  metric: str | None = None  # the accuracy the points were chosen by
  c_tolerance: float = 0.0  # a c this far (relative) outside the points' range is not an extrapolation
  dataset: str | None = None  # what the points were trained on (None: not recorded)

  @property
  def measured(self) -> bool:
    """False for a curve through published points: its GP std is not an uncertainty of anything."""
    return (self.selection or {}).get("rule") != PUBLISHED

  @property
  def c_reference(self) -> str:
    """What c is relative to: c = MACs / this."""
    return (f"EfficientNet-B0 at {self.base_resolution} px with a {self.num_classes}-class head "
            f"({self.b0_macs / 1e6:.1f}M MACs)")

  @property
  def c_range(self) -> tuple[float, float]:
    cs = [p["c"] for p in self.points]
    return min(cs), max(cs)

  def predict(self, c: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    """Posterior means and standard deviations of r and d at relative FLOPs `c`."""
    c = np.asarray(c, np.float64)
    if np.any(~np.isfinite(c)) or np.any(c <= 0):
      raise SearchError("relative FLOPs c must be finite and positive")
    r_mean, r_std = self.r_fit.predict(np.log(c))
    d_mean, d_std = self.d_fit.predict(np.log(c))
    return {"c": c, "r_mean": r_mean, "r_std": r_std, "d_mean": d_mean, "d_std": d_std}

  def model_for(self, target_macs: float) -> FormulaModel:
    """The network for a MACs budget; `SearchError` if no width gets within 5% of it."""
    if not (isinstance(target_macs, (int, float)) and math.isfinite(target_macs) and target_macs > 0):
      raise SearchError(f"the FLOPs budget must be a positive number, got {target_macs!r}")
    c = target_macs / self.b0_macs
    p = self.predict([c])
    r = round(float(np.clip(p["r_mean"][0], *_MULTIPLIER_RANGE)), 3)
    d = round(float(np.clip(p["d_mean"][0], *_MULTIPLIER_RANGE)), 3)
    # w is solved on a staircase (channels in steps of 8); at small resolutions one step can jump over the
    # budget. Then the input is moved by a pixel or two (r is quantised to pixels anyway), nearest first.
    best, first_error = None, None
    for r_try in self._nearby_resolutions(r):
      try:
        solution = solve_width(r_try, d, target_macs, rules=self.rules, base_resolution=self.base_resolution,
                               num_classes=self.num_classes)
      except SpecError as e:
        first_error = first_error or e
        continue
      if best is None or abs(solution.relative_error) < abs(best[1].relative_error):
        best = (r_try, solution)
      if abs(solution.relative_error) <= MAX_BUDGET_ERROR:
        break
    if best is None:
      raise SearchError(f"no network reaches {target_macs / 1e6:g}M MACs: {first_error}")
    r_found, solution = best
    if abs(solution.relative_error) > MAX_BUDGET_ERROR:
      raise SearchError(f"no network reaches {target_macs / 1e6:g}M MACs: at the formula's r={r:g}, d={d:g} the "
                        f"closest width gives {solution.macs / 1e6:.2f}M ({solution.relative_error:+.0%}); the formula "
                        f"was fitted on {self.c_range[0] * self.b0_macs / 1e6:.3g}M-"
                        f"{self.c_range[1] * self.b0_macs / 1e6:.3g}M")
    r = r_found
    spec = build_spec(r, d, solution.value, rules=self.rules, base_resolution=self.base_resolution)
    r_std, d_std = (float(p["r_std"][0]), float(p["d_std"][0])) if self.measured else (None, None)
    return FormulaModel(float(target_macs), c, r, r_std, d, d_std, solution.value,
                        self.rules, self.base_resolution, spec.resolution, solution.macs,
                        count_params(spec, self.num_classes), self.extrapolates(c))

  def extrapolates(self, c: float) -> bool:
    lo, hi = self.c_range
    return not lo / (1 + self.c_tolerance) <= c <= hi * (1 + self.c_tolerance)

  def _nearby_resolutions(self, r: float, pixels: int = 2) -> list[float]:
    """r, then the smallest r on the 0.001 grid giving each input size within `pixels` of int(base * r)."""
    base = self.base_resolution
    size = int(base * r)
    found = [r]
    for k in [s for step in range(1, pixels + 1) for s in (-step, step)]:
      target = size + k
      candidate = math.ceil(target / base * 1000) / 1000
      if target > 0 and int(base * candidate) == target and _MULTIPLIER_RANGE[0] <= candidate <= _MULTIPLIER_RANGE[1]:
        found.append(candidate)
    return found

  def curve(self, num: int = 50, margin: float = 1.25) -> dict[str, np.ndarray]:
    """r, d (mean and std) and the solved w on a log grid over the fitted range (widened by `margin`)."""
    lo, hi = self.c_range
    c = np.geomspace(lo / margin, hi * margin, num)
    out = self.predict(c)
    widths = []
    for ci, r, d in zip(c, out["r_mean"], out["d_mean"]):
      try:
        widths.append(solve_width(float(np.clip(r, *_MULTIPLIER_RANGE)), float(np.clip(d, *_MULTIPLIER_RANGE)),
                                  ci * self.b0_macs, rules=self.rules, base_resolution=self.base_resolution,
                                  num_classes=self.num_classes).value)
      except SpecError:
        widths.append(float("nan"))
    out["w"] = np.asarray(widths)
    return out

  def to_dict(self) -> dict[str, Any]:
    return {"format": FORMAT, "source": self.source, "dataset": self.dataset, "b0_macs": self.b0_macs,
            "base_resolution": self.base_resolution, "rules": self.rules, "num_classes": self.num_classes,
            "c_reference": self.c_reference, "selection": self.selection, "metric": self.metric,
            "c_tolerance": self.c_tolerance, "points": list(self.points),
            "r_fit": self.r_fit.to_dict(), "d_fit": self.d_fit.to_dict(), "input": "log(c)",
            "band": "GP posterior +-2 std of the fitted curve (MAP hyper-parameters), not a confidence interval on the "
                    "optimum"}

  @classmethod
  def from_dict(cls, data: Any) -> "Formula":
    """Reads format 2 and the older format 1 (then selection, metric and dataset are None: not recorded)."""
    if not isinstance(data, dict) or data.get("format") not in (FORMAT, *OLD_FORMATS):
      raise SearchError(f"not a tinynet_jax formula (expected format {FORMAT!r})")
    try:
      selection = data.get("selection")
      if selection is not None and not isinstance(selection, dict):
        raise TypeError("selection must be an object")
      return cls(GPFit.from_dict(data["r_fit"]), GPFit.from_dict(data["d_fit"]), int(data["b0_macs"]),
                 int(data["base_resolution"]), str(data["rules"]), int(data["num_classes"]),
                 tuple(dict(p) for p in data["points"]),
                 str(data["source"]), selection, data.get("metric"), float(data.get("c_tolerance", 0.0)),
                 data.get("dataset"))
    except (KeyError, TypeError, ValueError) as e:
      if isinstance(e, SearchError):
        raise
      raise SearchError(f"formula file is incomplete or corrupt: {type(e).__name__}: {e}") from None

  def save(self, path: str | Path) -> None:
    atomic_write_json(path, self.to_dict())

  @classmethod
  def load(cls, path: str | Path) -> "Formula":
    try:
      text = Path(path).read_text()
    except OSError as e:
      raise SearchError(f"cannot read formula {path}: {e.strerror or e}") from None
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise SearchError(f"formula {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    return cls.from_dict(data)


MIN_POINTS = 3


def fit_formula(frontier: Iterable[dict[str, Any]], *, b0_macs: int, base_resolution: int, rules: str,
                num_classes: int, source: str, selection: dict[str, Any] | None = None, metric: str | None = None,
                c_tolerance: float = 0.0, dataset: str | None = None) -> Formula:
  """Fits R(c) and D(c) on the chosen rows (each with 'macs', 'r', 'd'; id, w, level, kind, seeds and accuracies
  are kept, `metric`'s as 'accuracy'); `selection` says how they were chosen, and is recorded."""
  points = []
  for row in frontier:
    point = {k: row[k] for k in ("id", "r", "d", "w", "macs", "level", "top1", "ema_top1", "kind", "seeds")
             if k in row}
    point["c"] = row["macs"] / b0_macs
    if metric is not None and metric in row:
      point["accuracy"] = row[metric]
    points.append(point)
  distinct = {p["c"] for p in points}
  if len(distinct) < MIN_POINTS:
    raise SearchError(f"too few points to fit the formula: {len(distinct)} distinct FLOPs, need "
                      f"{MIN_POINTS}; train more models or more FLOPs levels")
  x = [math.log(p["c"]) for p in points]
  r_fit = fit_gp(x, [p["r"] for p in points])
  d_fit = fit_gp(x, [p["d"] for p in points])
  return Formula(r_fit, d_fit, int(b0_macs), int(base_resolution), rules, int(num_classes), tuple(points), source,
                 selection, metric, float(c_tolerance), dataset)


def paper_formula() -> Formula:
  """A GP through the published TinyNet A-E (r, d) at their MACs: the paper's formula as far as it is public."""
  b0 = reference_macs(BASE_RESOLUTION)
  rows = []
  for name in TINYNETS:
    entry = ZOO[name]
    macs = count_macs(model_spec(name), num_classes=FLOPS_CLASSES)
    rows.append({"id": name, "kind": "tinynet", "r": entry.r, "d": entry.d, "w": entry.w, "macs": macs})
  # c_tolerance: the paper's FLOPs are rounded (A: 339M published, 336.9M counted; E: 24M vs 24.4M), so a
  # budget within 2% of A or E is not an extrapolation.
  return fit_formula(rows, b0_macs=b0, base_resolution=BASE_RESOLUTION, rules="tinynet", num_classes=FLOPS_CLASSES,
                     source="paper preset: a curve through the published TinyNet A-E (r, d) at their MACs",
                     selection={"rule": PUBLISHED, "description": "TinyNet A-E as published"}, c_tolerance=0.02,
                     dataset="imagenet2012")


def parse_budget(text: str) -> float:
  """'150M', '1.2G', '24e6', '900K' -> MACs."""
  value = str(text).strip()
  scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(value[-1:].upper(), 1.0)
  if scale != 1.0:
    value = value[:-1]
  try:
    number = float(value) * scale
  except ValueError:
    raise SearchError(f"not a FLOPs budget: {text!r} (use e.g. 150M, 1.2G or 24e6)") from None
  if not (math.isfinite(number) and number > 0):
    raise SearchError(f"the FLOPs budget must be positive, got {text!r}")
  return number
