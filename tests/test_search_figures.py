"""The sweep's figures and Markdown report, on synthetic result rows (no training)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from tinynet_jax.errors import SearchError
from tinynet_jax.search import analysis, figures, report

B0_MACS = 390_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(i: int, *, kind: str = "random", level: float | None = 0.5, r: float = 1.0, d: float = 1.0,
         w: float = 1.0, top1: float = 0.5, c: float | None = None, label: str | None = None) -> dict:
  c = level if c is None else c
  return {"id": f"L{level}-{i:03d}", "kind": kind, "level": level, "r": r, "d": d, "w": w, "rules": "timm",
          "resolution": int(round(224 * r / 8)) * 8, "macs": int(c * B0_MACS), "c": c, "params": 1_000_000 + 1000 * i,
          "top1": top1, "top5": min(1.0, top1 + 0.2), "ema_top1": top1 + 0.01, "ema_top5": min(1.0, top1 + 0.21),
          "train_seconds": 12.5 + i, "label": label or f"L{level}-{i:03d}"}


def _random_rows(n: int = 12, seed: int = 0) -> list[dict]:
  rng = np.random.default_rng(seed)
  rows = []
  for i in range(n):
    r, d = rng.uniform(0.5, 1.0), rng.uniform(0.3, 1.0)
    w = float(np.sqrt(0.5 / (r * r * d)))
    rows.append(_row(i, r=r, d=d, w=w, top1=float(0.4 + 0.3 * r + 0.02 * rng.normal()), c=0.5 + 0.01 * rng.normal()))
  return rows


def _assert_written(out_dir, name: str) -> None:
  png, svg = (out_dir / f"{name}.png").read_bytes(), (out_dir / f"{name}.svg").read_bytes()
  assert png.startswith(PNG_MAGIC) and len(png) > 1000
  assert b"<svg" in svg[:1000] and svg.rstrip().endswith(b"</svg>")
  assert not [p.name for p in out_dir.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_fig2_is_a_regression_on_log_r_and_log_d_with_intervals(tmp_path):
  rows = _random_rows()
  out = analysis.importance(rows)
  figures.fig2_importance(rows, out, tmp_path)
  _assert_written(tmp_path, "fig2_importance")
  acc = np.array([row["top1"] for row in rows]) * 100
  design = np.stack([np.ones(len(rows)), np.log2([row["r"] for row in rows]), np.log2([row["d"] for row in rows])], 1)
  beta, residual, _, _ = np.linalg.lstsq(design, acc, rcond=None)
  se = np.sqrt(np.diag(residual[0] / (len(rows) - 3) * np.linalg.inv(design.T @ design)))
  t = 2.262157  # Student t, 0.975 quantile, 9 degrees of freedom (tables)
  for i, key in ((1, "r"), (2, "d")):
    c = out["coefficients"][key]
    assert c["per_doubling"] == pytest.approx(beta[i], abs=1e-9)
    assert c["ci95"] == pytest.approx([beta[i] - t * se[i], beta[i] + t * se[i]], abs=1e-5)
  assert out["n"] == 12 and out["level"] == 0.5 and out["metric"] == "top1" and out["min_n"] == 8
  assert out["coefficients"]["r"]["ci95"][0] > 0  # accuracy was made to follow r: the interval excludes 0
  assert out["coefficients"]["d"]["ci95"][0] < 0 < out["coefficients"]["d"]["ci95"][1]  # and not d
  svg = (tmp_path / "fig2_importance.svg").read_text()
  assert "per doubling of r" in svg and "Spearman" not in svg and "Pearson" not in svg


def test_fig2_prints_no_number_below_the_minimum_n(tmp_path):
  """Three models once gave Spearman rho = -1.000 (a 1-in-3 chance under the null), printed to 3 decimals."""
  rows = _random_rows(analysis.MIN_REGRESSION_N - 1)
  out = analysis.importance(rows)
  assert out["coefficients"] is None and out["r2"] is None and out["residual_sd"] is None
  figures.fig2_importance(rows, out, tmp_path)
  svg = (tmp_path / "fig2_importance.svg").read_text()
  assert "too few for a regression" in svg and "per doubling" not in svg
  assert analysis.importance(_random_rows(analysis.MIN_REGRESSION_N))["coefficients"] is not None
  rows = [_row(i, r=0.5 + 0.05 * i, d=0.7, top1=0.5 + 0.01 * i) for i in range(10)]  # d constant: no regression
  assert analysis.importance(rows)["coefficients"] is None


def test_fig2_rejects_bad_input(tmp_path):
  with pytest.raises(SearchError, match="none"):
    analysis.importance([])
  rows = _random_rows(4)
  rows[1]["top1"] = float("nan")
  with pytest.raises(SearchError, match="top1"):
    analysis.importance(rows)
  with pytest.raises(SearchError, match="top1"):  # the drawing checks the rows it plots too
    figures.fig2_importance(rows, analysis.importance(_random_rows(4)), tmp_path)
  assert list(tmp_path.iterdir()) == []


def _curve(num: int = 20) -> dict:
  c = np.geomspace(0.08, 1.2, num)
  r = 1 + 0.25 * np.log(c)
  d = 1 + 0.35 * np.log(c)
  w = np.sqrt(c / (r * r * d))
  w[0] = np.nan  # as Formula.curve() gives where no width meets the budget
  return {"c": c, "r_mean": r, "r_std": np.full(num, 0.05), "d_mean": d, "d_std": np.full(num, 0.05),
          "w": w.tolist()}


def test_fig3_formula(tmp_path):
  frontier = [_row(i, level=c, r=1 + 0.25 * np.log(c), d=1 + 0.35 * np.log(c) + (0.5 if i == 0 else 0), w=0.9)
              for i, c in enumerate([0.1, 0.25, 0.5, 1.0])]
  out = figures.fig3_formula(frontier, _curve(), tmp_path, points_label="best 4 of each level")
  _assert_written(tmp_path, "fig3_formula")
  svg = (tmp_path / "fig3_formula.svg").read_text()
  assert "best 4 of each level" in svg and "frontier models" not in svg  # the legend says what was fitted
  assert "GP posterior" in svg and "not a confidence interval" in svg
  assert out["points"] == 4 and out["grid"] == 20
  assert out["c_range"] == pytest.approx([0.08, 1.2])
  assert out["within_2sigma"] == {"r": 4, "d": 3}  # the first point's d is 10σ off
  with pytest.raises(SearchError, match="frontier"):
    figures.fig3_formula([], _curve(), tmp_path)
  bad = _curve()
  del bad["d_std"]
  with pytest.raises(SearchError, match="d_std"):
    figures.fig3_formula(frontier, bad, tmp_path)


def test_fig6_accuracy_vs_flops(tmp_path):
  random_rows = [_row(i, level=lvl, c=lvl * (1 + 0.02 * i), top1=0.3 + 0.3 * lvl + 0.01 * (i % 3))
                 for i, lvl in enumerate([0.1, 0.1, 0.25, 0.25, 0.5, 0.5, 1.0])]
  groups = {
      "random models": random_rows,
      "Pareto frontier": random_rows[1::2],
      "tiny formula": [_row(90, kind="formula", level=0.25, top1=0.55, label="formula@0.25")],
      "EfficientNet-B^-k (inverse giant formula)": [
          _row(91 + k, kind="baseline", level=0.5 ** k, top1=0.6 - 0.05 * k, label=f"EfficientNet-B^-{k}")
          for k in range(1, 4)],
      "TinyNet A-E": [],
  }
  out = figures.fig6_accuracy_vs_flops(groups, tmp_path)
  _assert_written(tmp_path, "fig6_accuracy_vs_flops")
  assert out["groups"] == {"random models": 7, "Pareto frontier": 3, "tiny formula": 1,
                           "EfficientNet-B^-k (inverse giant formula)": 3}
  assert out["macs_range"] == [random_rows[0]["macs"], random_rows[-1]["macs"]]
  svg = (tmp_path / "fig6_accuracy_vs_flops.svg").read_text()
  assert "MACs (M)" in svg and "EfficientNet-B^-2" in svg and "formula@0.25" in svg
  assert "L0.1-000" not in svg  # random models are not annotated

  # Same data, same bytes: no dates, creator strings or random ids in the files.
  first = {p.name: p.read_bytes() for p in tmp_path.glob("fig6_*")}
  figures.fig6_accuracy_vs_flops(groups, tmp_path)
  assert {p.name: p.read_bytes() for p in tmp_path.glob("fig6_*")} == first

  with pytest.raises(SearchError, match="non-empty group"):
    figures.fig6_accuracy_vs_flops({"random models": [], "Pareto frontier": []}, tmp_path)


def _report_inputs() -> dict:
  rows = _random_rows(5) + [_row(50, kind="baseline", level=0.25, top1=0.61, label="EfficientNet-B^-2")]
  frontier = sorted(rows[:2], key=lambda row: row["macs"])
  formula_table = [{"budget_macs": 0.5 * B0_MACS, "c": 0.49876, "r": 0.8512, "r_std": 0.0213, "d": 0.7044,
                    "d_std": 0.031, "w": 0.9123456, "resolution": 192, "macs": 193_456_789, "params": 3_456_789}]
  correlations = {"n": 9, "min_n": 8, "level": 0.5, "metric": "top1", "r2": 0.61, "residual_sd": 1.234,
                  "coefficients": {"r": {"per_doubling": 3.21, "se": 1.0, "ci95": [0.76, 5.66]},
                                   "d": {"per_doubling": -0.2, "se": 1.0, "ci95": [-2.65, 2.25]}}}
  return dict(title="Rubik's cube sweep", dataset="digits",
              budget="digits, base resolution 32, 60 steps per model, batch 64", rows=rows, frontier=frontier,
              formula_table=formula_table, figures=["fig2_importance", "fig3_formula", "fig6_accuracy_vs_flops.png"],
              correlations=correlations, notes=["frontier on top1", "a | pipe"])


def test_write_report(tmp_path):
  inputs = _report_inputs()
  path = tmp_path / "out" / "report.md"
  report.write_report(path, **inputs)
  text = path.read_text()
  assert text.startswith("# Rubik's cube sweep\n")
  assert "digits, base resolution 32, 60 steps per model, batch 64" in text
  assert "**6 models trained** (1 baseline, 5 random); **2 on the accuracy-vs-MACs Pareto frontier**" in text
  lines = text.splitlines()
  model_lines = [line for line in lines if line.startswith("| L")]
  assert len(model_lines) == 6
  macs = [float(line.split("|")[8]) for line in model_lines]
  assert macs == sorted(macs)  # sorted by MACs
  starred = {line.split("|")[1].strip() for line in model_lines if "| ★ |" in line}
  assert starred == {row["id"] for row in inputs["frontier"]}
  assert "| 195.0 | 0.4988 | 0.851 ± 0.043 | 0.704 ± 0.062 | 0.912 | 192 | 193.5 | 3,456,789 |" in text
  assert "| doubling r | +3.21 | +0.76 to +5.66 |" in text and "at FLOPs level c = 0.5" in text
  assert "n = 9 random models" in text and "Spearman" not in text
  assert "GP's posterior band of the fitted curve" in text or "posterior band of the fitted curve" in text
  assert "Seed noise: not measured" in text
  for name, link in (("Fig. 2", "fig2_importance.png"), ("Fig. 3", "fig3_formula.png"),
                     ("Fig. 6", "fig6_accuracy_vs_flops.png")):
    assert f"![{name}]({link})" in text
  assert "* frontier on top1" in text and "* a | pipe" in text
  header_cells = [line for line in lines if line.startswith("| id |")][0].count("|")
  assert all(line.count("|") == header_cells for line in model_lines)
  assert [p.name for p in path.parent.iterdir()] == ["report.md"]

  # A row with missing numbers renders dashes instead of failing; one without MACs is a user error.
  inputs["rows"] = inputs["rows"] + [{"id": "partial", "kind": "random", "macs": 1_000_000, "top1": None}]
  report.write_report(path, **inputs)
  assert "| partial |  | random | - | - | - | - | 1.0 | - | - | - | - |" in path.read_text()
  with pytest.raises(SearchError, match="macs"):
    report.write_report(path, **{**inputs, "rows": [{"id": "x", "kind": "random"}]})


def test_write_report_failed_rename_keeps_the_old_report(tmp_path, monkeypatch):
  path = tmp_path / "report.md"
  path.write_text("old report\n")

  def broken_replace(src, dst):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", broken_replace)
  with pytest.raises(OSError, match="disk full"):
    report.write_report(path, **_report_inputs())
  assert path.read_text() == "old report\n"
  assert [p.name for p in tmp_path.iterdir()] == ["report.md"]

  # The figures are written the same way: a failed rename leaves neither a half file nor a temp file.
  with pytest.raises(OSError, match="disk full"):
    figures.fig2_importance(_random_rows(), analysis.importance(_random_rows()), tmp_path)
  assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_write_report_failed_write_keeps_the_old_report(tmp_path, monkeypatch):
  path = tmp_path / "report.md"
  path.write_text("old report\n")

  def broken_fsync(fd):
    raise OSError("I/O error")

  monkeypatch.setattr(os, "fsync", broken_fsync)
  with pytest.raises(OSError, match="I/O error"):
    report.write_report(path, **_report_inputs())
  assert path.read_text() == "old report\n"
  assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_write_report_into_a_read_only_directory(tmp_path):
  path = tmp_path / "report.md"
  path.write_text("old report\n")
  tmp_path.chmod(0o555)
  try:
    with pytest.raises(OSError):
      report.write_report(path, **_report_inputs())
  finally:
    tmp_path.chmod(0o755)
  assert path.read_text() == "old report\n"


def test_markdown_table():
  assert report.markdown_table(["a", "b"], [[1, "x|y"]]) == "| a | b |\n|---|---|\n| 1 | x\\|y |"
  with pytest.raises(ValueError):
    report.markdown_table(["a", "b"], [[1]])


def _sweep_rows(seed: int = 0) -> list[dict]:
  """Three levels x 10 random models of a synthetic sweep, result-row complete, plus two replicates."""
  rng = np.random.default_rng(seed)
  rows = []
  for level in (0.5, 0.25, 0.125):
    for i in range(10):
      r, d = rng.uniform(0.5, 1.0), rng.uniform(0.4, 1.2)
      row = _row(i, level=level, r=r, d=d, w=float(np.sqrt(level / (r * r * d))), c=level * (1 + 0.02 * rng.uniform(-1, 1)),
                 top1=float(0.5 + 0.2 * level + 0.1 * r + 0.01 * rng.normal()))
      rows.append(dict(row, b0_macs=B0_MACS, base_resolution=224, flops_classes=1000, rules="tinynet",
                       dataset="imagenet100", seed=0))
  best = max((row for row in rows if row["level"] == 0.5), key=lambda row: row["top1"])
  for seed, delta in ((1, -0.02), (2, 0.01)):
    rows.append(dict(best, id=f"{best['id']}-s{seed}", seed=seed, replicate_of=best["id"], top1=best["top1"] + delta))
  return rows


def test_replicates_merge_into_their_model_and_give_the_seed_sigma():
  rows = _sweep_rows()
  original = rows[-1]["replicate_of"]
  merged = analysis.merge_replicates(rows)
  assert len(merged) == 30 and not any(row.get("replicate_of") for row in merged)
  model = next(row for row in merged if row["id"] == original)
  top1 = next(row["top1"] for row in rows if row["id"] == original)
  assert model["seeds"] == 3 and model["top1"] == pytest.approx(top1 - 0.01 / 3)
  noise = analysis.seed_noise(rows)
  expected = np.std([top1, top1 - 0.02, top1 + 0.01], ddof=1)
  assert noise == {"sigma": pytest.approx(expected), "models": 1, "runs": 3, "df": 2, "metric": "top1"}
  assert analysis.seed_noise(rows[:-2]) is None
  levels = analysis.level_noise([row for row in merged], "top1", noise)
  assert [lv["level"] for lv in levels] == [0.5, 0.25, 0.125] and all(lv["n"] == 10 for lv in levels)
  for lv in levels:
    values = sorted((row["top1"] for row in merged if row["level"] == lv["level"]), reverse=True)
    assert lv["spread"] == pytest.approx(np.std(values, ddof=1)) and lv["gap"] == pytest.approx(values[0] - values[1])
    assert lv["within_noise"] == (lv["gap"] < 2 * np.sqrt(2) * expected)
  with pytest.raises(SearchError, match="has no result"):
    analysis.merge_replicates([row for row in rows if row["id"] != original])
  with pytest.raises(SearchError, match="other MACs"):
    analysis.merge_replicates(rows[:-1] + [dict(rows[-1], macs=1)])


def test_analyze_records_what_it_fitted_and_reports_the_noise(tmp_path):
  import json
  from tinynet_jax.search.formula import Formula
  (tmp_path / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in _sweep_rows()))
  summary = analysis.analyze(tmp_path / "results.jsonl", tmp_path, preferred_fig2_level=0.5)
  saved = json.loads((tmp_path / "formula.json").read_text())
  assert saved["format"] == "tinynet_jax.formula/2" and saved["dataset"] == "imagenet100"
  assert saved["selection"] == {"rule": "top_k", "k": analysis.FIT_K, "metric": "top1",
                                "description": f"best {analysis.FIT_K} of each level"}
  assert [p["id"] for p in saved["points"]] == summary["fitted_on"] and len(saved["points"]) == 3 * analysis.FIT_K
  for point in saved["points"]:
    assert {"id", "c", "r", "d", "accuracy", "level"} <= set(point)
  assert Formula.load(tmp_path / "formula.json").selection == saved["selection"]
  report_text = (tmp_path / "report.md").read_text()
  assert f"fitted on the best {analysis.FIT_K} of each level" in report_text
  assert "frontier (eps-dominance, eps=" in report_text and "Pareto" not in report_text
  assert "Seed σ = " in report_text and "pooled over 1 replicated models (3 runs, 2 degrees of freedom)" in report_text
  assert "spread across models" in report_text and "frontier membership" in report_text
  assert "| doubling r |" in report_text  # 10 models at 0.5 >= 8: a regression with intervals
  assert summary["noise"]["runs"] == 3 and len([line for line in report_text.splitlines() if "-s1 " in line]) == 0
  svg = (tmp_path / "fig3_formula.svg").read_text()
  assert f"best {analysis.FIT_K} of each level" in svg
