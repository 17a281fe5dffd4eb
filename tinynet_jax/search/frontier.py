"""Which models the search's answer rests on: the accuracy-vs-MACs frontier and the best models of each level.

`pareto_frontier` is the textbook frontier. It is dishonest on a sweep: the models of one FLOPs level differ in
MACs only by the sampler's tolerance (±3%), so the cheapest model of a level beats every costlier model of the
levels below and joins the frontier whatever its accuracy: membership is decided by MAC jitter.
`eps_frontier` counts MACs within a factor (1 + eps) as equal cost (eps from the levels' spread,
`level_eps`), and accuracies within `delta` (the seed noise, when replicates measured it) as equal accuracy.
`top_k_per_level` is what the formula is fitted on by default (chosen by tests/test_search_simulation.py).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

from tinynet_jax.errors import SearchError


def _check(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
  for row in rows:
    for key in keys:
      value = row.get(key)
      if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SearchError(f"result {row.get('id', '?')!r} has no finite {key!r}")


def pareto_frontier(rows: Sequence[dict[str, Any]], *, metric: str = "top1") -> list[dict[str, Any]]:
  """Rows not dominated by another row, sorted by MACs.

  Row a dominates b when ``a.macs <= b.macs`` and ``a[metric] >= b[metric]`` with one of them strict. So exact
  ties (same MACs, same accuracy) both stay, a row with the same MACs but lower accuracy goes, and so does a
  row that costs more without being more accurate.
  """
  _check(rows, ("macs", metric))
  ordered = sorted(rows, key=lambda row: (row["macs"], -row[metric]))
  frontier, best_cheaper = [], -math.inf
  for _, group in itertools.groupby(ordered, key=lambda row: row["macs"]):
    group = list(group)
    top = group[0][metric]
    if top > best_cheaper:
      frontier.extend(row for row in group if row[metric] == top)
      best_cheaper = top
  return frontier


def eps_frontier(rows: Sequence[dict[str, Any]], *, metric: str = "top1", eps: float,
                 delta: float = 0.0) -> list[dict[str, Any]]:
  """Rows not ε-dominated, sorted by MACs (then id).

  a ε-dominates b when ``a.macs <= (1 + eps) * b.macs`` (no costlier, up to the tolerance) and
  ``a[metric] > b[metric] + delta`` (more accurate beyond the noise). With eps = 0 and delta = 0 this is the
  Pareto frontier except that equally accurate, strictly cheaper rows do not push a row out.
  """
  if not (math.isfinite(eps) and eps >= 0 and math.isfinite(delta) and delta >= 0):
    raise SearchError(f"frontier tolerances must be finite and non-negative, got eps={eps!r}, delta={delta!r}")
  _check(rows, ("macs", metric))
  kept = [b for b in rows
          if not any(a["macs"] <= (1 + eps) * b["macs"] and a[metric] > b[metric] + delta for a in rows)]
  return sorted(kept, key=lambda row: (row["macs"], str(row.get("id", ""))))


def level_eps(rows: Sequence[dict[str, Any]]) -> float:
  """The eps that makes models of one FLOPs level equal in cost: with t the largest |c / level - 1| of the rows,
  two models of a level differ in MACs by at most a factor (1 + t) / (1 - t)."""
  _check(rows, ("c", "level"))
  t = max((abs(row["c"] / row["level"] - 1) for row in rows), default=0.0)
  if t >= 1:
    raise SearchError(f"a model's FLOPs are {t:.0%} off its level; these are not a sweep's random models")
  return (1 + t) / (1 - t) - 1


def top_k_per_level(rows: Sequence[dict[str, Any]], *, metric: str = "top1", k: int) -> list[dict[str, Any]]:
  """The `k` most accurate rows of each FLOPs level (all of a level with fewer), sorted by MACs (then id)."""
  if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
    raise SearchError(f"models per level to fit on must be a positive integer, got {k!r}")
  _check(rows, ("macs", metric))
  by_level: dict[Any, list] = {}
  for row in rows:
    by_level.setdefault(row.get("level"), []).append(row)
  chosen = [row for group in by_level.values()
            for row in sorted(group, key=lambda row: (-row[metric], str(row.get("id", ""))))[:k]]
  return sorted(chosen, key=lambda row: (row["macs"], str(row.get("id", ""))))
