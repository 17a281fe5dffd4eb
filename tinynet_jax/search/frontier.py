"""The accuracy-vs-MACs Pareto frontier: the models no other model beats on both counts."""
from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

from tinynet_jax.errors import SearchError


def pareto_frontier(rows: Sequence[dict[str, Any]], *, metric: str = "top1") -> list[dict[str, Any]]:
  """Rows not dominated by another row, sorted by MACs.

  Row a dominates b when ``a.macs <= b.macs`` and ``a[metric] >= b[metric]`` with one of them strict. So exact
  ties (same MACs, same accuracy) both stay, a row with the same MACs but lower accuracy goes, and so does a
  row that costs more without being more accurate.
  """
  for row in rows:
    for key in ("macs", metric):
      value = row.get(key)
      if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SearchError(f"result {row.get('id', '?')!r} has no finite {key!r}")
  ordered = sorted(rows, key=lambda row: (row["macs"], -row[metric]))
  frontier, best_cheaper = [], -math.inf
  for _, group in itertools.groupby(ordered, key=lambda row: row["macs"]):
    group = list(group)
    top = group[0][metric]
    if top > best_cheaper:
      frontier.extend(row for row in group if row[metric] == top)
      best_cheaper = top
  return frontier
