"""The paper's figures from sweep results: Fig. 2 (importance at fixed FLOPs), Fig. 3 (the formula's r, d, w
against FLOPs) and Fig. 6 (accuracy against FLOPs). Each writes ``<name>.png`` and ``<name>.svg`` atomically;
Fig. 3 and 6 return what they read off the data as a JSON-able dict, Fig. 2 draws the regression
`tinynet_jax.search.analysis.importance` computed.

Matplotlib is used through `Figure` + the Agg canvas, without pyplot, so no global state or display is touched;
it is imported lazily so the rest of the package does not pay for it.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynet_jax.errors import SearchError
from tinynet_jax.files import atomic_write_bytes
from tinynet_jax.search.results import column

DPI = 150
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_DIMS = (("r", "resolution multiplier r"), ("d", "depth multiplier d"), ("w", "width multiplier w"))
_METRIC_LABELS = {"top1": "top-1", "top5": "top-5", "ema_top1": "EMA top-1", "ema_top5": "EMA top-5"}
_ANNOTATED_KINDS = ("baseline", "formula", "tinynet")  # named models; random ids would only clutter the plot


def _metric_label(metric: str) -> str:
  return f"{_METRIC_LABELS.get(metric, metric)} accuracy (%)"


def _new_figure(width: float, height: float, panels: int = 1):
  from matplotlib.figure import Figure
  figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
  axes = figure.subplots(1, panels, squeeze=False)[0]
  for ax in axes:
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(which="both", labelsize=8)
  return figure, axes


def _log_x(ax) -> None:
  """Log x axis with plain tick labels (40, 100, 0.2) instead of 4×10¹; minor ones thinned as matplotlib does."""
  from matplotlib.ticker import LogFormatter

  class Plain(LogFormatter):
    def __call__(self, x, pos=None):
      return f"{x:g}" if super().__call__(x, pos) else ""

  ax.set_xscale("log")
  ax.xaxis.set_major_formatter(Plain())
  ax.xaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _save(figure, out_dir: str | Path, name: str) -> list[str]:
  """PNG and SVG, each written to a temp file beside the target and renamed into place.

  Dates, creator strings and random SVG ids are pinned, so the same data gives byte-identical files.
  """
  import matplotlib
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  FigureCanvasAgg(figure)
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  written = []
  for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
    path = out_dir / f"{name}.{fmt}"
    buffer = io.BytesIO()
    # svg.hashsalt: without it clip-path ids are salted with a fresh uuid on every save.
    with matplotlib.rc_context({"svg.hashsalt": name}):
      figure.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    atomic_write_bytes(path, buffer.getvalue())
    written.append(str(path))
  return written


def fig2_importance(rows: Sequence[Mapping[str, Any]], importance: Mapping[str, Any], out_dir: str | Path, *,
                    name: str = "fig2_importance") -> list[str]:
  """Which dimension matters at fixed FLOPs: accuracy against r and d (log axes) of random models of one level,
  as partial residuals of the regression `tinynet_jax.search.analysis.importance` computed (accuracy with the
  other multiplier's effect removed), each panel titled with its slope per doubling and 95% interval; w, implied
  by r, d and the level, is drawn without a number. With fewer than `importance['min_n']` models (or no
  coefficients) the raw points are drawn and no number at all is printed."""
  rows = list(rows)
  metric = importance["metric"]
  accuracy = column(rows, metric, "Fig. 2") * 100
  values = {key: column(rows, key, "Fig. 2") for key, _ in _DIMS}
  coefficients = importance.get("coefficients")
  figure, axes = _new_figure(11, 3.6, panels=3)
  for ax, (key, label) in zip(axes, _DIMS):
    x = values[key]
    if coefficients is not None and key in coefficients:
      other = "d" if key == "r" else "r"
      y = accuracy - coefficients[other]["per_doubling"] * np.log2(values[other])
      y = y - np.mean(y) + np.mean(accuracy)
      c = coefficients[key]
      grid = np.geomspace(x.min(), x.max(), 20)
      line = np.mean(y) + c["per_doubling"] * (np.log2(grid) - np.mean(np.log2(x)))
      ax.plot(grid, line, color="C3", linewidth=1.2)
      ax.set_title(f"{c['per_doubling']:+.2f} points per doubling of {key}\n(95% CI {c['ci95'][0]:+.2f} to "
                   f"{c['ci95'][1]:+.2f}, {other} fixed, w implied)", fontsize=8)
      ax.set_ylabel(f"{_METRIC_LABELS.get(metric, metric)} adjusted for {other} (%)", fontsize=8)
    else:
      y = accuracy
      ax.set_title(f"{key}: no coefficient" if key != "w" else "w: implied by r, d and the level", fontsize=8)
      ax.set_ylabel(_metric_label(metric), fontsize=8)
    ax.scatter(x, y, s=22, alpha=0.8, color="C0", edgecolors="none")
    _log_x(ax)
    ax.set_xlabel(label + " (log)", fontsize=9)
  n, min_n = importance["n"], importance.get("min_n", 0)
  c_range = importance.get("c_range")
  where = "" if c_range is None else f" at c = {np.median(column(rows, 'c', 'Fig. 2')):.2f} (FLOPs / FLOPs of B0)"
  if coefficients is None:
    caption = f"n = {n} random models{where}: fewer than {min_n}, too few for a regression; no number is shown"
  else:
    caption = (f"Which dimension matters: accuracy ~ log2 r + log2 d over n = {n} random models{where} "
               f"(R² = {importance['r2']:.2f}, residual sd {importance['residual_sd']:.2f} points)")
  figure.suptitle(caption, fontsize=9)
  return _save(figure, out_dir, name)


def _curve_array(curve: Mapping[str, Any], key: str, size: int | None) -> np.ndarray:
  if key not in curve:
    raise SearchError(f"Fig. 3: the formula curve has no {key!r}")
  values = np.asarray(curve[key], np.float64).reshape(-1)
  if size is not None and len(values) != size:
    raise SearchError(f"Fig. 3: the formula curve's {key!r} has {len(values)} values, its 'c' has {size}")
  return values


BAND_LABEL = "GP posterior ± 2σ of the fitted curve (MAP hyper-parameters)"


def fig3_formula(frontier: Sequence[Mapping[str, Any]], curve: Mapping[str, Any], out_dir: str | Path, *,
                 name: str = "fig3_formula", points_label: str = "fitted models") -> dict[str, Any]:
  """r, d and w of the models the formula was fitted on against c (log), with the GP mean ± 2σ for r and d and
  the solved w; `points_label` says which models they are (e.g. "best 4 of each level"). The band is the
  posterior of the fitted curve, not a confidence interval on the optimum; the title says so.

  Returns {"points", "grid", "c_range", "within_2sigma": {r, d}}: how many frontier points lie inside the band
  (the band read off at each point's c, log-linearly), a quick check that the fit follows its data.
  """
  frontier = list(frontier)
  if not frontier:
    raise SearchError("Fig. 3 needs at least one frontier model")
  c = _curve_array(curve, "c", None)
  if len(c) < 2 or not np.all(np.isfinite(c)) or np.any(c <= 0):
    raise SearchError("Fig. 3: the formula curve needs at least 2 finite, positive c values")
  order = np.argsort(c)
  c = c[order]
  points_c = column(frontier, "c", "Fig. 3")
  if np.any(points_c <= 0):
    raise SearchError("Fig. 3: frontier models need positive c (MACs relative to B0) for a log axis")
  result: dict[str, Any] = {"points": len(frontier), "grid": len(c), "c_range": [float(c[0]), float(c[-1])],
                            "within_2sigma": {}}
  figure, axes = _new_figure(11, 3.6, panels=3)
  for ax, (key, label) in zip(axes, _DIMS):
    values = column(frontier, key, "Fig. 3")
    if key in ("r", "d"):
      mean = _curve_array(curve, f"{key}_mean", len(c))[order]
      std = _curve_array(curve, f"{key}_std", len(c))[order]
      ax.fill_between(c, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.2, linewidth=0, label=BAND_LABEL)
      ax.plot(c, mean, color="C0", linewidth=1.5, label=f"GP mean {key.upper()}(c)")
      at_mean = np.interp(np.log(points_c), np.log(c), mean)
      at_std = np.interp(np.log(points_c), np.log(c), std)
      result["within_2sigma"][key] = int(np.sum(np.abs(values - at_mean) <= 2 * at_std))
    else:
      ax.plot(c, _curve_array(curve, "w", len(c))[order], color="C0", linewidth=1.5,
              label="w solved from the budget")
    ax.scatter(points_c, values, s=30, color="C3", zorder=3, label=points_label)
    _log_x(ax)
    ax.set_xlabel("c = FLOPs / FLOPs of B0 (log)", fontsize=9)
    ax.set_ylabel(label, fontsize=9)
    ax.legend(fontsize=7)
  figure.suptitle(f"The tiny formula: r, d and w against FLOPs, fitted on the {points_label} (the band is the "
                  "fitted curve's posterior, not a confidence interval on the optimum)", fontsize=9)
  _save(figure, out_dir, name)
  return result


def fig6_accuracy_vs_flops(groups: Mapping[str, Sequence[Mapping[str, Any]]], out_dir: str | Path, *,
                           metric: str = "top1", name: str = "fig6_accuracy_vs_flops") -> dict[str, Any]:
  """Accuracy against MACs (log) for each group, in the given order.

  A group whose name contains "frontier" is drawn as a line with markers, the others as scatter with distinct
  markers; baseline, formula and TinyNet models are annotated with their `label`. Empty groups are skipped.
  Returns {"metric", "groups": {name: count}, "macs_range": [lo, hi] in MACs}.
  """
  groups = {group: list(rows) for group, rows in groups.items() if rows}
  if not groups:
    raise SearchError("Fig. 6 needs at least one non-empty group of models")
  figure, axes = _new_figure(7, 4.8)
  ax = axes[0]
  lo, hi = math.inf, -math.inf
  for index, (group, rows) in enumerate(groups.items()):
    rows = sorted(rows, key=lambda row: row.get("macs") or 0)
    macs = column(rows, "macs", "Fig. 6")
    if np.any(macs <= 0):
      raise SearchError(f"Fig. 6: group {group!r} has models with non-positive MACs")
    macs = macs / 1e6
    accuracy = column(rows, metric, "Fig. 6") * 100
    lo, hi = min(lo, macs.min() * 1e6), max(hi, macs.max() * 1e6)
    marker, color = _MARKERS[index % len(_MARKERS)], f"C{index % 10}"
    if "frontier" in group.lower():
      ax.plot(macs, accuracy, marker=marker, markersize=5, color=color, linewidth=1.5, label=group, zorder=3)
    else:
      background = all(row.get("kind") == "random" for row in rows)  # many points: small and light
      ax.scatter(macs, accuracy, marker=marker, s=16 if background else 36, alpha=0.45 if background else 0.9,
                 color=color, edgecolors="none", label=group, zorder=2 if background else 4)
    for row, x, y in zip(rows, macs, accuracy):
      if row.get("kind") in _ANNOTATED_KINDS:
        ax.annotate(str(row.get("label") or row.get("id", "")), (x, y), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
  _log_x(ax)
  ax.set_xlabel("MACs (M)", fontsize=9)
  ax.set_ylabel(_metric_label(metric), fontsize=9)
  ax.legend(fontsize=7, loc="lower right")
  ax.set_title("Accuracy against FLOPs", fontsize=10)
  _save(figure, out_dir, name)
  return {"metric": metric, "groups": {group: len(rows) for group, rows in groups.items()},
          "macs_range": [int(lo), int(hi)]}
