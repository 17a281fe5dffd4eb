"""From results to conclusions: the frontier, the fitted formula, the seed noise, the paper's figures, a report.

Runs at the end of a sweep and on its own over any results file (``python -m tinynet_jax.analyze DIR``).
The frontier and the fit use the random models only (the paper fits on frontier models of random twists);
baselines, TinyNets and formula models are drawn for comparison. The paper's Pareto frontier is replaced by an
eps-dominance frontier, and the formula is fitted on the best FIT_K models of each level: on a simulated sweep
with a planted optimum (tests/test_search_simulation.py) that is what gives a ±2σ band covering the truth.
Replicate runs (other seeds of a model) are merged into their model (mean accuracy) and give the seed noise.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynet_jax.errors import SearchError
from tinynet_jax.search import figures
from tinynet_jax.search.formula import MIN_POINTS, Formula, fit_formula
from tinynet_jax.search.frontier import eps_frontier, level_eps, top_k_per_level
from tinynet_jax.search.report import write_report
from tinynet_jax.search.results import column, read_results

FORMULA = "formula.json"
REPORT = "report.md"
METRICS = ("top1", "ema_top1")
# top_k: the k best of each level (the default, chosen by tests/test_search_simulation.py); frontier: the
# eps-dominance frontier; level_best: top_k with k = 1; auto: the frontier, or top_k when it spans < 3 FLOPs.
FIT_ON = ("top_k", "frontier", "level_best", "auto")
FIT_K = 4
MIN_REGRESSION_N = 8  # Fig. 2: 3 coefficients leave >= 5 residual degrees of freedom; fewer, no number at all


def _common(rows: Sequence[dict[str, Any]], key: str):
  values = {row[key] for row in rows}
  if len(values) != 1:
    raise SearchError(f"results mix different {key} values {sorted(values)}; analyse one sweep at a time")
  return values.pop()


# ---- replicates and seed noise ---------------------------------------------------------------------------------

def merge_replicates(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """One row per model: a row with ``replicate_of`` (see tinynet_jax.search.results) joins its model's row, whose
  accuracies become the mean over its seeds; ``seeds`` counts them and ``runs`` keeps each run's accuracies."""
  by_id = {row["id"]: row for row in rows if not row.get("replicate_of")}
  runs: dict[str, list] = {model_id: [row] for model_id, row in by_id.items()}
  for row in rows:
    original = row.get("replicate_of")
    if not original:
      continue
    if original not in by_id:
      raise SearchError(f"result {row['id']!r} replicates {original!r}, which has no result")
    if row.get("macs") != by_id[original].get("macs"):
      raise SearchError(f"result {row['id']!r} replicates {original!r} but has other MACs; not the same network")
    runs[original].append(row)
  merged = []
  for model_id, row in by_id.items():
    group = runs[model_id]
    out = dict(row, seeds=len(group))
    if len(group) > 1:
      for key in (*METRICS, "top5", "ema_top5"):
        values = [run[key] for run in group if isinstance(run.get(key), (int, float))]
        if len(values) == len(group):
          out[key] = float(np.mean(values))
      out["runs"] = [{"id": run["id"], "seed": run.get("seed"), **{k: run.get(k) for k in METRICS}} for run in group]
    merged.append(out)
  return merged


def seed_noise(rows: Sequence[dict[str, Any]], metric: str = "top1") -> dict[str, Any] | None:
  """The pooled seed standard deviation of `metric` over the models that were trained more than once:
  sqrt(sum of squared deviations from each model's mean / sum of (runs - 1)). None without replicates."""
  groups: dict[str, list[float]] = {}
  for row in rows:
    groups.setdefault(row.get("replicate_of") or row["id"], []).append(float(row[metric]))
  replicated = [np.asarray(v) for v in groups.values() if len(v) > 1]
  if not replicated:
    return None
  ss = sum(float(np.sum((v - v.mean()) ** 2)) for v in replicated)
  df = sum(len(v) - 1 for v in replicated)
  return {"sigma": math.sqrt(ss / df), "models": len(replicated), "runs": sum(len(v) for v in replicated), "df": df,
          "metric": metric}


def level_noise(models: Sequence[dict[str, Any]], metric: str, noise: dict[str, Any] | None) -> list[dict[str, Any]]:
  """Per FLOPs level: the spread of `metric` across its random models (one value per model, replicates merged),
  the gap between its best two, and whether that gap is within the seed noise (2 sigma of a difference of two
  runs, 2 sqrt(2) sigma; None when sigma was not measured)."""
  out = []
  for level in sorted({row["level"] for row in models}, reverse=True):
    values = sorted((float(row[metric]) for row in models if row["level"] == level), reverse=True)
    gap = values[0] - values[1] if len(values) > 1 else None
    out.append({"level": level, "n": len(values), "spread": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "best": values[0], "gap": gap,
                "within_noise": None if noise is None or gap is None else gap < 2 * math.sqrt(2) * noise["sigma"]})
  return out


def frontier_noise_note(frontier: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], metric: str, eps: float,
                        noise: dict[str, Any] | None) -> str:
  """Whether each frontier model beats every cheaper model by more than the noise (2 sqrt(2) sigma)."""
  if noise is None:
    return "frontier membership is not checked against noise: the seed σ was not measured"
  bound = 2 * math.sqrt(2) * noise["sigma"]
  close = []
  for row in frontier:
    cheaper = [other[metric] for other in rows if other["macs"] * (1 + eps) < row["macs"]]
    if cheaper and row[metric] - max(cheaper) < bound:
      close.append(f"{row['id']} (+{100 * (row[metric] - max(cheaper)):.2f} points)")
  if not close:
    return f"every frontier model beats all cheaper models by more than the noise (2√2σ = {100 * bound:.2f} points)"
  return (f"frontier membership within noise (beats the best cheaper model by less than 2√2σ = {100 * bound:.2f} "
          f"points): {', '.join(close)}")


# ---- Fig. 2 ------------------------------------------------------------------------------------------------

def importance(rows: Sequence[Mapping[str, Any]], metric: str = "top1") -> dict[str, Any]:
  """Fig. 2's study: ordinary least squares of accuracy (points) on log2 r and log2 d among random models of one
  FLOPs level, so w is implied (at fixed FLOPs, more r or d at fixed other means less w).

  Returns {"n", "min_n", "metric", "level", "c_range", "coefficients", "r2", "residual_sd"}. `coefficients`
  maps r and d to {"per_doubling", "ci95": [lo, hi], "se"} (points of accuracy per doubling, Student-t 95%
  interval), and is None, as are r2 and residual_sd, when n < MIN_REGRESSION_N: no number at all then.
  """
  from scipy import stats
  rows = list(rows)
  if not rows:
    raise SearchError("Fig. 2 needs random models at one FLOPs level, got none")
  accuracy = column(rows, metric, "Fig. 2") * 100
  log_r, log_d = np.log2(column(rows, "r", "Fig. 2")), np.log2(column(rows, "d", "Fig. 2"))
  levels = {row.get("level") for row in rows}
  c = column(rows, "c", "Fig. 2") if all("c" in row for row in rows) else None
  result: dict[str, Any] = {
      "n": len(rows), "min_n": MIN_REGRESSION_N, "metric": metric, "level": levels.pop() if len(levels) == 1 else None,
      "c_range": None if c is None else [float(c.min()), float(c.max())], "coefficients": None, "r2": None,
      "residual_sd": None}
  design = np.stack([np.ones(len(rows)), log_r, log_d], axis=1)
  if len(rows) < MIN_REGRESSION_N or np.linalg.matrix_rank(design) < 3:
    return result
  beta, _, _, _ = np.linalg.lstsq(design, accuracy, rcond=None)
  residual = accuracy - design @ beta
  df = len(rows) - 3
  sigma2 = float(residual @ residual) / df
  se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
  t = float(stats.t.ppf(0.975, df))
  result["coefficients"] = {key: {"per_doubling": float(beta[i]), "se": float(se[i]),
                                  "ci95": [float(beta[i] - t * se[i]), float(beta[i] + t * se[i])]}
                            for i, key in ((1, "r"), (2, "d"))}
  total = float(np.sum((accuracy - accuracy.mean()) ** 2))
  result["r2"] = 1 - float(residual @ residual) / total if total > 0 else None
  result["residual_sd"] = math.sqrt(sigma2)
  return result


def fig2_level(rows: Sequence[dict[str, Any]], preferred: float | None = None) -> float | None:
  """The level of the Fig. 2 study: `preferred` if it has random models, else the level with the most."""
  counts = collections.Counter(row["level"] for row in rows if row["kind"] == "random")
  if not counts:
    return None
  if preferred is not None and counts.get(preferred, 0) >= 3:
    return preferred
  return max(counts, key=lambda level: (counts[level], level))


# ---- what the formula is fitted on -------------------------------------------------------------------------

def level_best(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
  """The most accurate model of each FLOPs level, by MACs."""
  return top_k_per_level(rows, metric=metric, k=1)


def select_points(random_rows: Sequence[dict[str, Any]], *, metric: str, fit_on: str, k: int,
                  eps: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
  """The rows the formula is fitted on and the rule that chose them ({"rule", "k" | "eps", "metric",
  "description"}), the description being what Fig. 3's legend and the report say."""
  if fit_on in ("frontier", "auto"):
    points = eps_frontier(random_rows, metric=metric, eps=eps)
    if fit_on == "frontier" or len({row["level"] for row in points}) >= MIN_POINTS:
      return points, {"rule": "eps_frontier", "eps": eps, "metric": metric,
                      "description": f"frontier (eps-dominance, eps={eps:.1%})"}
  if fit_on == "level_best":
    k = 1
  points = top_k_per_level(random_rows, metric=metric, k=k)
  counts = collections.Counter(row["level"] for row in random_rows)
  description = "best of each level" if k == 1 else f"best {k} of each level"
  if min(counts.values()) < k:
    description += " (all of a level with fewer)"
  return points, {"rule": "top_k", "k": k, "metric": metric, "description": description}


def fit(rows: Sequence[dict[str, Any]], *, metric: str = "top1", fit_on: str = "top_k", k: int = FIT_K,
        source: str = "") -> tuple[list, list, Formula]:
  """(frontier, the rows the formula is fitted on, formula) from result rows (replicates merged into their
  models first, so a replicated model counts once, with its mean accuracy).

  The frontier is the eps-dominance frontier, eps making the models of one level equal in cost. fit_on: 'top_k'
  (the `k` best models of each level; the default), 'frontier', 'level_best' (k = 1), or 'auto' (the frontier,
  or top_k when the frontier spans fewer than 3 levels). formula.selection records which.
  """
  if metric not in METRICS:
    raise SearchError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
  if fit_on not in FIT_ON:
    raise SearchError(f"fit_on must be one of {', '.join(FIT_ON)}, got {fit_on!r}")
  random_rows = [row for row in merge_replicates(rows) if row["kind"] == "random"]
  if not random_rows:
    raise SearchError("the results hold no random models to build a frontier from")
  eps = level_eps(random_rows)
  frontier = eps_frontier(random_rows, metric=metric, eps=eps)
  points, selection = select_points(random_rows, metric=metric, fit_on=fit_on, k=k, eps=eps)
  formula = fit_formula(points, b0_macs=_common(rows, "b0_macs"), base_resolution=_common(rows, "base_resolution"),
                        rules=_common(random_rows, "rules"), num_classes=_common(rows, "flops_classes"),
                        source=source, selection=selection, metric=metric, c_tolerance=eps,
                        dataset=_common(rows, "dataset") if all("dataset" in row for row in rows) else None)
  return frontier, points, formula


def analyze(results: str | Path, out_dir: str | Path, *, metric: str = "top1", fit_on: str = "top_k",
            k: int = FIT_K, preferred_fig2_level: float | None = None,
            title: str = "Rubik's cube sweep", budget: str = "", dataset: str | None = None,
            notes: Sequence[str] = ()) -> dict[str, Any]:
  """Writes formula.json, the figures (PNG + SVG) and report.md into `out_dir`; returns a summary."""
  runs = read_results(results)
  rows = merge_replicates(runs)
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  dataset = dataset or _common(runs, "dataset")
  frontier, points, formula = fit(runs, metric=metric, fit_on=fit_on, k=k, source=f"{results} ({dataset})")
  if formula.dataset is None:
    formula = dataclasses.replace(formula, dataset=dataset)
  random_rows = [row for row in rows if row["kind"] == "random"]
  noise = seed_noise(runs, metric)
  levels_noise = level_noise(random_rows, metric, noise)

  levels = sorted({row["level"] for row in random_rows}, reverse=True)
  table = []
  for level in levels:
    model = formula.model_for(level * formula.b0_macs)
    table.append({"budget_macs": model.target_macs, "c": model.c, "r": model.r, "r_std": model.r_std, "d": model.d,
                  "d_std": model.d_std, "w": model.w, "resolution": model.resolution, "macs": model.macs,
                  "params": model.params})

  written = []
  regression = None
  notes = list(notes)
  notes.append(frontier_noise_note(frontier, random_rows, metric, formula.c_tolerance, noise))
  level = fig2_level(rows, preferred_fig2_level)
  if level is not None:
    study = [row for row in random_rows if row["level"] == level]
    regression = importance(study, metric)
    regression["level"] = level
    figures.fig2_importance(study, regression, out_dir)
    written.append("fig2_importance")
  selection = formula.selection
  figures.fig3_formula(points, formula.curve(), out_dir, points_label=selection["description"])
  written.append("fig3_formula")
  frontier_label = f"frontier (eps-dominance, eps={formula.c_tolerance:.1%})"
  groups = {
      "random models": random_rows,
      frontier_label: frontier,
      "tiny formula": [row for row in rows if row["kind"] == "formula"],
      "EfficientNet-B^-k (inverse giant formula)": [row for row in rows if row["kind"] == "baseline"],
      "TinyNet A-E": [row for row in rows if row["kind"] == "tinynet"],
  }
  figures.fig6_accuracy_vs_flops({k_: v for k_, v in groups.items() if v}, out_dir, metric=metric)
  written.append("fig6_accuracy_vs_flops")
  formula.save(out_dir / FORMULA)
  budget_text = f"{dataset}, base resolution {formula.base_resolution}" + (f", {budget}" if budget else "")
  fit_note = (f"formula fitted on the {selection['description']} by {metric} ({len(points)} models: "
              f"{', '.join(row['id'] for row in points)}); rule '{selection['rule']}', recorded in {FORMULA}")
  write_report(out_dir / REPORT, title=title, dataset=dataset, budget=budget_text, rows=rows, frontier=frontier,
               formula_table=table, figures=written, correlations=regression, noise=noise, levels=levels_noise,
               frontier_label=f"accuracy-vs-MACs {frontier_label}", fitted=[row["id"] for row in points],
               fitted_label=selection["description"],
               notes=(f"frontier on {metric}: a model is off it when a model at most {formula.c_tolerance:.1%} "
                      "costlier (the spread of one FLOPs level) is more accurate", fit_note,
                      f"GP input log(c), c = MACs / MACs of {formula.c_reference}", *notes))
  return {"models": len(rows), "frontier": [row["id"] for row in frontier],
          "fitted_on": [row["id"] for row in points], "selection": selection, "formula": table,
          "importance": regression, "noise": noise, "report": str(out_dir / REPORT),
          "formula_path": str(out_dir / FORMULA)}
