"""``report.md``: the sweep's models, frontier, fitted formula, seed noise, Fig. 2's regression and the figures in
one Markdown page."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinynet_jax.errors import SearchError
from tinynet_jax.files import atomic_write_text

FRONTIER_MARK = "★"
FITTED_MARK = "•"  # the formula was fitted on it
_FIGURE_TITLES = {"fig2": "Fig. 2", "fig3": "Fig. 3", "fig6": "Fig. 6"}


def _cell(value: Any) -> str:
  # A pipe or newline inside a cell would break the row apart.
  return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A GitHub-flavoured Markdown table; cells are str()-ed and escaped."""
  for row in rows:
    if len(row) != len(headers):
      raise ValueError(f"table row has {len(row)} cells for {len(headers)} headers: {row!r}")
  lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
  lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
  return "\n".join(lines)


def _number(value: Any, spec: str, scale: float = 1.0) -> str:
  """`value * scale` formatted, or "-" where the value is missing or not finite (a crashed or partial row)."""
  if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
    return "-"
  value = float(value) * scale
  return format(value, spec) if math.isfinite(value) else "-"


def _figure_link(name: str, report_dir: Path) -> str:
  """``![Fig. N](file.png)``: a bare name gets ``.png``; an absolute path is made relative to the report."""
  path = Path(name)
  if not path.suffix:
    path = path.with_name(path.name + ".png")
  if path.is_absolute():
    path = Path(os.path.relpath(path, report_dir))
  title = _FIGURE_TITLES.get(path.stem.split("_")[0], path.stem)
  return f"![{title}]({path.as_posix()})"


def _models_table(rows: Sequence[Mapping[str, Any]], on_frontier: set[str], fitted: set[str]) -> str:
  table = []
  for row in sorted(rows, key=lambda row: (row["macs"], str(row["id"]))):
    marks = (FRONTIER_MARK if row["id"] in on_frontier else "") + (FITTED_MARK if row["id"] in fitted else "")
    table.append([
        row["id"], marks, row.get("kind", "-"),
        _number(row.get("r"), ".3f"), _number(row.get("d"), ".3f"), _number(row.get("w"), ".3f"),
        _number(row.get("resolution"), ".0f"), _number(row["macs"], ".1f", 1e-6), _number(row.get("params"), ",.0f"),
        _number(row.get("top1"), ".1f", 100), _number(row.get("ema_top1"), ".1f", 100),
        _number(row.get("train_seconds"), ".0f")])
  return markdown_table(["id", "frontier", "kind", "r", "d", "w", "resolution (px)", "MACs (M)", "params",
                         "top-1 %", "EMA top-1 %", "train s"], table)


def _formula_table(formula_table: Sequence[Mapping[str, Any]]) -> str:
  table = []
  for f in formula_table:
    table.append([
        _number(f.get("budget_macs"), ".1f", 1e-6), _number(f.get("c"), ".4f"),
        f"{_number(f.get('r'), '.3f')} ± {_number(f.get('r_std'), '.3f', 2)}",
        f"{_number(f.get('d'), '.3f')} ± {_number(f.get('d_std'), '.3f', 2)}",
        _number(f.get("w"), ".3f"), _number(f.get("resolution"), ".0f"), _number(f.get("macs"), ".1f", 1e-6),
        _number(f.get("params"), ",.0f")])
  return markdown_table(["budget (M MACs)", "c", "r (GP ± 2σ)", "d (GP ± 2σ)", "w", "resolution (px)", "MACs (M)",
                         "params"], table)


def _regression(study: Mapping[str, Any]) -> list[str]:
  level = study.get("level")
  where = f" at FLOPs level c = {level:g}" if isinstance(level, (int, float)) else ""
  metric = study.get("metric") or "accuracy"
  metric = {"top1": "top-1", "ema_top1": "EMA top-1"}.get(metric, metric)
  n, min_n = study.get("n", 0), study.get("min_n", 0)
  coefficients = study.get("coefficients")
  if coefficients is None:
    return [f"{n} random models{where}: fewer than {min_n}, too few for a regression (3 coefficients need at "
            f"least {min_n} models to leave 5 residual degrees of freedom); no number is reported."]
  lines = [f"Least squares of {metric} (points) on log2 r and log2 d over n = {n} random models{where}: at fixed "
           "FLOPs w is implied, so each slope is the gain from doubling that multiplier at the other's fixed value "
           f"while w shrinks to pay for it. R² = {_number(study.get('r2'), '.2f')}, residual sd "
           f"{_number(study.get('residual_sd'), '.2f')} points.", ""]
  table = [[f"doubling {key}", _number(c["per_doubling"], "+.2f"),
            f"{_number(c['ci95'][0], '+.2f')} to {_number(c['ci95'][1], '+.2f')}"]
           for key, c in coefficients.items()]
  return lines + [markdown_table(["", f"{metric} points", "95% interval (Student t)"], table)]


def _noise(noise: Mapping[str, Any] | None, levels: Sequence[Mapping[str, Any]]) -> list[str]:
  if noise is None:
    lines = ["Seed noise: not measured (no model was trained with more than one seed; set the sweep's "
             "`replicates`). Without it no ranking below can be told apart from noise."]
  else:
    lines = [f"Seed σ = {_number(noise['sigma'], '.2f', 100)} points of {noise['metric']}, pooled over "
             f"{noise['models']} replicated models ({noise['runs']} runs, {noise['df']} degrees of freedom). Two "
             f"models differ beyond noise when their gap exceeds 2√2σ = "
             f"{_number(2 * math.sqrt(2) * noise['sigma'], '.2f', 100)} points."]
  if levels:
    table = [[f"{lv['level']:g}", lv["n"], _number(lv.get("spread"), ".2f", 100), _number(lv.get("best"), ".1f", 100),
              _number(lv.get("gap"), ".2f", 100),
              {True: "within noise", False: "beyond noise", None: "unknown"}[lv.get("within_noise")]]
             for lv in levels]
    lines += ["", markdown_table(["level c", "models", "spread across models (sd, points)", "best %",
                                  "best - 2nd (points)", "ranking of the best two"], table)]
  return lines


def write_report(path: str | Path, *, title: str, dataset: str, budget: str, rows: Sequence[Mapping[str, Any]],
                 frontier: Sequence[Mapping[str, Any]], formula_table: Sequence[Mapping[str, Any]],
                 figures: Sequence[str], correlations: Mapping[str, Any] | None = None,
                 notes: Sequence[str] = (), noise: Mapping[str, Any] | None = None,
                 levels: Sequence[Mapping[str, Any]] = (), frontier_label: str = "accuracy-vs-MACs Pareto frontier",
                 fitted: Sequence[str] = (), fitted_label: str = "") -> None:
  """Writes the report atomically: a reader sees the old report or the new one, never a part of one.

  `figures` are names (``fig3_formula``) or file names / paths, linked relative to the report's directory.
  `correlations` is Fig. 2's regression (`analysis.importance`); `noise` and `levels` the seed noise and each
  level's spread (`analysis.seed_noise`, `analysis.level_noise`); `fitted` the ids the formula was fitted on,
  `fitted_label` how they were chosen.
  """
  for row in rows:
    if "id" not in row or _number(row.get("macs"), "g") == "-":
      raise SearchError(f"report: result {row.get('id', '?')!r} has no id or no finite 'macs'")
  path = Path(path)
  on_frontier = {row["id"] for row in frontier}
  fitted = set(fitted)
  kinds: dict[str, int] = {}
  for row in rows:
    kinds[row.get("kind", "?")] = kinds.get(row.get("kind", "?"), 0) + 1
  by_kind = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
  parts = [f"# {title}", "", f"* Dataset: {dataset}", f"* Budget: {budget}", "",
           f"**{len(rows)} models trained** ({by_kind or 'none'}); **{len(frontier)} on the {frontier_label}** "
           f"(marked {FRONTIER_MARK})" + (f"; the formula is fitted on the {fitted_label} (marked {FITTED_MARK})"
                                          if fitted else "") + ".", "",
           "## Models (by MACs)", "", _models_table(rows, on_frontier, fitted), "",
           "## Seed noise against the spread across models", "", *_noise(noise, levels), "",
           "## The fitted formula", ""]
  if formula_table:
    parts += [(f"Fitted on the {fitted_label}. " if fitted_label else "") +
              "± 2σ is the Gaussian process's posterior band of the fitted curve (MAP hyper-parameters), not a "
              "confidence interval on the optimum.", "", _formula_table(formula_table), ""]
  else:
    parts += ["No formula was fitted.", ""]
  if correlations:
    parts += ["## Importance at fixed FLOPs (Fig. 2)", "", *_regression(correlations), ""]
  if figures:
    parts += ["## Figures", ""] + [line for name in figures for line in (_figure_link(name, path.parent), "")]
  if notes:
    parts += ["## Notes", ""] + [f"* {note}" for note in notes] + [""]
  atomic_write_text(path, "\n".join(parts))
