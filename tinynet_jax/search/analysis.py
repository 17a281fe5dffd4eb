"""From results to conclusions: the Pareto frontier, the fitted formula, the paper's figures and a report.

Runs at the end of a sweep and on its own over any results file (``python -m tinynet_jax.analyze DIR``).
The frontier and the fit use the random models only (the paper fits on frontier models of random twists);
baselines, TinyNets and formula models are drawn for comparison.
"""
from __future__ import annotations

import collections
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynet_jax.errors import SearchError
from tinynet_jax.search import figures
from tinynet_jax.search.formula import MIN_POINTS, Formula, fit_formula
from tinynet_jax.search.frontier import pareto_frontier
from tinynet_jax.search.report import write_report
from tinynet_jax.search.results import column, read_results

FORMULA = "formula.json"
REPORT = "report.md"
METRICS = ("top1", "ema_top1")
FIT_ON = ("frontier", "level_best", "auto")


def _common(rows: Sequence[dict[str, Any]], key: str):
  values = {row[key] for row in rows}
  if len(values) != 1:
    raise SearchError(f"results mix different {key} values {sorted(values)}; analyse one sweep at a time")
  return values.pop()


def ranks(values: Sequence[float]) -> np.ndarray:
  """Ranks starting at 1, ties sharing their average rank (as Spearman's rho needs)."""
  _, inverse, counts = np.unique(np.asarray(values, np.float64), return_inverse=True, return_counts=True)
  ends = np.cumsum(counts)
  return ((ends - counts + 1 + ends) / 2)[inverse.reshape(-1)]


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
  """Pearson's r, or None where it is undefined (fewer than 2 points, a constant column)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
    return None
  value = float(np.corrcoef(a, b)[0, 1])
  return value if math.isfinite(value) else None


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
  """Spearman's rho: Pearson's r of the (tie-averaged) ranks."""
  return pearson(ranks(a), ranks(b)) if len(a) >= 2 else None


def importance(rows: Sequence[Mapping[str, Any]], metric: str = "top1") -> dict[str, Any]:
  """Fig. 2's study: how accuracy correlates with r, d and w among random models at (about) one FLOPs level.

  Returns {"n", "metric", "level", "c_range", "pearson": {r, d, w}, "spearman": {r, d, w}}; a correlation that
  is undefined (a constant column) is None. `level` is the rows' common level, None when they differ.
  """
  rows = list(rows)
  if len(rows) < 3:
    raise SearchError(f"Fig. 2 needs at least 3 models at one FLOPs level, got {len(rows)}")
  accuracy = column(rows, metric, "Fig. 2") * 100
  levels = {row.get("level") for row in rows}
  c = column(rows, "c", "Fig. 2") if all("c" in row for row in rows) else None
  result: dict[str, Any] = {
      "n": len(rows), "metric": metric, "level": levels.pop() if len(levels) == 1 else None,
      "c_range": None if c is None else [float(c.min()), float(c.max())], "pearson": {}, "spearman": {}}
  for key in ("r", "d", "w"):
    values = column(rows, key, "Fig. 2")
    result["pearson"][key] = pearson(values, accuracy)
    result["spearman"][key] = spearman(values, accuracy)
  return result


def fig2_level(rows: Sequence[dict[str, Any]], preferred: float | None = None) -> float | None:
  """The level of the Fig. 2 study: `preferred` if it has random models, else the level with the most."""
  counts = collections.Counter(row["level"] for row in rows if row["kind"] == "random")
  if not counts:
    return None
  if preferred is not None and counts.get(preferred, 0) >= 3:
    return preferred
  return max(counts, key=lambda level: (counts[level], level))


def level_best(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
  """The most accurate model of each FLOPs level, by MACs."""
  best = {}
  for row in rows:
    if row["level"] not in best or row[metric] > best[row["level"]][metric]:
      best[row["level"]] = row
  return sorted(best.values(), key=lambda row: row["macs"])


def fit(rows: Sequence[dict[str, Any]], *, metric: str = "top1", fit_on: str = "frontier",
        source: str = "") -> tuple[list, list, Formula]:
  """(frontier, the rows the formula is fitted on, formula) from result rows.

  fit_on: 'frontier' (the paper: the Pareto-frontier models), 'level_best' (the best model of each level), or
  'auto' (the frontier, or the level winners when the frontier spans fewer than 3 FLOPs values, which short,
  noisy runs such as the demo's can give).
  """
  if metric not in METRICS:
    raise SearchError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
  if fit_on not in FIT_ON:
    raise SearchError(f"fit_on must be one of {', '.join(FIT_ON)}, got {fit_on!r}")
  random_rows = [row for row in rows if row["kind"] == "random"]
  if not random_rows:
    raise SearchError("the results hold no random models to build a frontier from")
  frontier = pareto_frontier(random_rows, metric=metric)
  points = frontier
  if fit_on == "level_best" or (fit_on == "auto" and len({row["macs"] for row in frontier}) < MIN_POINTS):
    points = level_best(random_rows, metric)
  formula = fit_formula(points, b0_macs=_common(rows, "b0_macs"), base_resolution=_common(rows, "base_resolution"),
                        rules=_common(random_rows, "rules"), num_classes=_common(rows, "flops_classes"),
                        source=source)
  return frontier, points, formula


def analyze(results: str | Path, out_dir: str | Path, *, metric: str = "top1", fit_on: str = "frontier",
            preferred_fig2_level: float | None = None,
            title: str = "Rubik's cube sweep", budget: str = "", dataset: str | None = None,
            notes: Sequence[str] = ()) -> dict[str, Any]:
  """Writes formula.json, the figures (PNG + SVG) and report.md into `out_dir`; returns a summary."""
  rows = read_results(results)
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  dataset = dataset or _common(rows, "dataset")
  frontier, points, formula = fit(rows, metric=metric, fit_on=fit_on, source=f"{results} ({dataset})")

  levels = sorted({row["level"] for row in rows if row["kind"] == "random"}, reverse=True)
  table = []
  for level in levels:
    model = formula.model_for(level * formula.b0_macs)
    table.append({"budget_macs": model.target_macs, "c": model.c, "r": model.r, "r_std": model.r_std, "d": model.d,
                  "d_std": model.d_std, "w": model.w, "resolution": model.resolution, "macs": model.macs,
                  "params": model.params})

  written = []
  correlations = None
  notes = list(notes)
  level = fig2_level(rows, preferred_fig2_level)
  if level is not None:
    study = [row for row in rows if row["kind"] == "random" and row["level"] == level]
    if len(study) >= 3:
      correlations = importance(study, metric)
      correlations["level"] = level
      figures.fig2_importance(study, correlations, out_dir)
      written.append("fig2_importance")
  if correlations is None:
    notes.append("Fig. 2 (importance at fixed FLOPs) needs at least 3 random models at one level; not drawn")
  figures.fig3_formula(points, formula.curve(), out_dir)
  written.append("fig3_formula")
  groups = {
      "random models": [row for row in rows if row["kind"] == "random"],
      "Pareto frontier": frontier,
      "tiny formula": [row for row in rows if row["kind"] == "formula"],
      "EfficientNet-B^-k (inverse giant formula)": [row for row in rows if row["kind"] == "baseline"],
      "TinyNet A-E": [row for row in rows if row["kind"] == "tinynet"],
  }
  figures.fig6_accuracy_vs_flops({k: v for k, v in groups.items() if v}, out_dir, metric=metric)
  written.append("fig6_accuracy_vs_flops")
  formula.save(out_dir / FORMULA)
  budget_text = f"{dataset}, base resolution {formula.base_resolution}" + (f", {budget}" if budget else "")
  write_report(out_dir / REPORT, title=title, dataset=dataset, budget=budget_text, rows=rows, frontier=frontier,
               formula_table=table, figures=written, correlations=correlations,
               notes=(f"frontier on {metric}; formula fitted on "
                      f"{'the frontier' if points is frontier else 'the best model of each level'} "
                      f"({', '.join(row['id'] for row in points)}); GP input log(c), c = MACs / MACs(B0) at base "
                      f"resolution {formula.base_resolution} with a {formula.num_classes}-class head", *notes))
  return {"models": len(rows), "frontier": [row["id"] for row in frontier],
          "fitted_on": [row["id"] for row in points], "formula": table,
          "correlations": correlations, "report": str(out_dir / REPORT), "formula_path": str(out_dir / FORMULA)}
