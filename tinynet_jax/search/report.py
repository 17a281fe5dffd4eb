"""``report.md``: the sweep's models, frontier, fitted formula, correlations and figures in one Markdown page."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from tinynet_jax.errors import SearchError
from tinynet_jax.files import atomic_write_text

FRONTIER_MARK = "★"
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


def _corr(value: Any) -> str:
  return "n/a" if value is None else _number(value, "+.3f")


def _figure_link(name: str, report_dir: Path) -> str:
  """``![Fig. N](file.png)``: a bare name gets ``.png``; an absolute path is made relative to the report."""
  path = Path(name)
  if not path.suffix:
    path = path.with_name(path.name + ".png")
  if path.is_absolute():
    path = Path(os.path.relpath(path, report_dir))
  title = _FIGURE_TITLES.get(path.stem.split("_")[0], path.stem)
  return f"![{title}]({path.as_posix()})"


def _models_table(rows: Sequence[Mapping[str, Any]], on_frontier: set[str]) -> str:
  table = []
  for row in sorted(rows, key=lambda row: (row["macs"], str(row["id"]))):
    table.append([
        row["id"], FRONTIER_MARK if row["id"] in on_frontier else "", row.get("kind", "-"),
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
  return markdown_table(["budget (M MACs)", "c", "r (± 2σ)", "d (± 2σ)", "w", "resolution (px)", "MACs (M)",
                         "params"], table)


def _correlations(correlations: Mapping[str, Any]) -> list[str]:
  level = correlations.get("level")
  where = f" at FLOPs level c = {level:g}" if isinstance(level, (int, float)) else ""
  metric = correlations.get("metric") or "accuracy"
  metric = {"top1": "top-1", "ema_top1": "EMA top-1"}.get(metric, metric)
  return [f"{correlations.get('n', '?')} random models{where}; correlation of each multiplier with {metric} "
          "(n/a: the multiplier did not vary).", "",
          markdown_table(["", "r", "d", "w"],
                         [[name] + [_corr(correlations.get(key, {}).get(dim)) for dim in "rdw"]
                          for name, key in (("Pearson r", "pearson"), ("Spearman ρ", "spearman"))])]


def write_report(path: str | Path, *, title: str, dataset: str, budget: str, rows: Sequence[Mapping[str, Any]],
                 frontier: Sequence[Mapping[str, Any]], formula_table: Sequence[Mapping[str, Any]],
                 figures: Sequence[str], correlations: Mapping[str, Any] | None = None,
                 notes: Sequence[str] = ()) -> None:
  """Writes the report atomically: a reader sees the old report or the new one, never a part of one.

  `figures` are names (``fig3_formula``) or file names / paths, linked relative to the report's directory.
  """
  for row in rows:
    if "id" not in row or _number(row.get("macs"), "g") == "-":
      raise SearchError(f"report: result {row.get('id', '?')!r} has no id or no finite 'macs'")
  path = Path(path)
  on_frontier = {row["id"] for row in frontier}
  kinds: dict[str, int] = {}
  for row in rows:
    kinds[row.get("kind", "?")] = kinds.get(row.get("kind", "?"), 0) + 1
  by_kind = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
  parts = [f"# {title}", "", f"* Dataset: {dataset}", f"* Budget: {budget}", "",
           f"**{len(rows)} models trained** ({by_kind or 'none'}); **{len(frontier)} on the accuracy-vs-MACs "
           f"Pareto frontier** (marked {FRONTIER_MARK}).", "",
           "## Models (by MACs)", "", _models_table(rows, on_frontier), "",
           "## The fitted formula", ""]
  parts += [_formula_table(formula_table) if formula_table else "No formula was fitted.", ""]
  if correlations:
    parts += ["## Importance at fixed FLOPs (Fig. 2)", "", *_correlations(correlations), ""]
  if figures:
    parts += ["## Figures", ""] + [line for name in figures for line in (_figure_link(name, path.parent), "")]
  if notes:
    parts += ["## Notes", ""] + [f"* {note}" for note in notes] + [""]
  atomic_write_text(path, "\n".join(parts))
