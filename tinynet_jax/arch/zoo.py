"""The model zoo: named points of the (r, d, w) cube, with the numbers the paper and the released weights give.

Sources: r/w/d from the official ``tinynet_pytorch/eval.py`` and MindSpore ``TINYNET_CFG``; paper FLOPs and top-1
from the official README table (B0 row from the MindSpore README); "released" top-1 is timm's evaluation of the
official checkpoints (``results-imagenet.csv``). EfficientNet-B^-k are the paper's inverse-giant-formula
baselines d=1.2^phi, w=1.1^phi, r=1.15^phi; the paper does not give phi, so ours is solved (see
`tinynet_jax.costs.solve_phi`) to match TinyNet-B..E's MACs, as the paper pairs them.
"""
from __future__ import annotations

import dataclasses
import difflib

from tinynet_jax.errors import SpecError
from tinynet_jax.arch.spec import BASE_RESOLUTION, ModelSpec, build_spec, check_multiplier

# EfficientNet's compound-scaling constants (alpha, beta, gamma) for depth, width and resolution.
GIANT_DEPTH, GIANT_WIDTH, GIANT_RESOLUTION = 1.2, 1.1, 1.15


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  name: str
  r: float
  d: float
  w: float
  rules: str
  paper_mflops: float | None = None
  paper_top1: float | None = None
  released_top1: float | None = None
  phi: float | None = None  # set for the inverse-giant-formula baselines


def giant_formula(phi: float) -> tuple[float, float, float]:
  """(r, d, w) of EfficientNet's compound scaling at coefficient phi (phi < 0 shrinks)."""
  if isinstance(phi, bool) or not isinstance(phi, (int, float)) or phi != phi or abs(phi) == float("inf"):
    raise SpecError(f"phi must be a finite number, got {phi!r}")
  return GIANT_RESOLUTION ** phi, GIANT_DEPTH ** phi, GIANT_WIDTH ** phi


def _giant(name: str, phi: float, paper_mflops: float | None, paper_top1: float | None) -> ZooEntry:
  r, d, w = giant_formula(phi)
  return ZooEntry(name, r, d, w, "efficientnet", paper_mflops, paper_top1, phi=phi)


ZOO: dict[str, ZooEntry] = {e.name: e for e in (
    ZooEntry("efficientnet_b0", 1.0, 1.0, 1.0, "efficientnet", 387, 76.7),
    ZooEntry("tinynet_a", 0.86, 1.2, 1.0, "tinynet", 339, 76.8, 77.666),
    ZooEntry("tinynet_b", 0.84, 1.1, 0.75, "tinynet", 202, 75.0, 74.946),
    ZooEntry("tinynet_c", 0.825, 0.85, 0.54, "tinynet", 100, 71.2, 71.214),
    ZooEntry("tinynet_d", 0.68, 0.695, 0.54, "tinynet", 52, 67.0, 66.936),
    ZooEntry("tinynet_e", 0.475, 0.60, 0.51, "tinynet", 24, 59.9, 59.874),
    # phi solved so that MACs come closest to TinyNet-B..E's (tests/test_costs.py re-solves and checks these).
    # The phi staircase is coarse (r, d and w all jump): B^-3/B^-4 land 10%/12% below D/E, the nearest steps.
    _giant("efficientnet_b-1", -1.68, None, None),
    _giant("efficientnet_b-2", -3.1, None, None),
    _giant("efficientnet_b-3", -3.97, None, None),
    _giant("efficientnet_b-4", -6.0, 24, 56.7),
)}


TINYNETS = tuple(name for name in ZOO if name.startswith("tinynet_"))  # A-E, the paper's models


def zoo_entry(name: str) -> ZooEntry:
  if not isinstance(name, str) or name not in ZOO:
    close = difflib.get_close_matches(str(name), ZOO, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(ZOO)})"
    raise SpecError(f"unknown model {name!r}{hint}")
  return ZOO[name]


def model_spec(name: str | None = None, *, r: float | None = None, d: float | None = None,
               w: float | None = None, rules: str | None = None, phi: float | None = None,
               base_resolution: int = BASE_RESOLUTION, resolution: int | None = None) -> ModelSpec:
  """A zoo model by name, any (r, d, w) under a rule set, or the inverse giant formula at `phi`.

  >>> model_spec("tinynet_e").resolution
  106
  >>> model_spec(r=0.7, d=0.9, w=0.6).depths
  (1, 2, 2, 3, 3, 4, 1)
  """
  knobs = {k: v for k, v in (("r", r), ("d", d), ("w", w)) if v is not None}
  if name is not None:
    if knobs or phi is not None or rules is not None:
      raise SpecError("give either a model name or r/d/w/phi/rules, not both")
    entry = zoo_entry(name)
    return build_spec(entry.r, entry.d, entry.w, rules=entry.rules, base_resolution=base_resolution,
                      resolution=resolution, name=entry.name)
  if phi is not None:
    if knobs or rules not in (None, "efficientnet"):
      raise SpecError("phi sets r, d and w under the efficientnet rules; do not give them too")
    r_, d_, w_ = giant_formula(phi)
    return build_spec(r_, d_, w_, rules="efficientnet", base_resolution=base_resolution,
                      resolution=resolution)
  if not knobs:
    raise SpecError("give a model name, or at least one of r, d, w")
  values = {k: check_multiplier(k, knobs.get(k, 1.0)) for k in ("r", "d", "w")}
  return build_spec(**values, rules=rules or "tinynet", base_resolution=base_resolution, resolution=resolution)
