"""The main job end to end: a tiny real sweep on digits through `python -m tinynet_jax.main`, killed and rerun,
then the formula and analyze CLIs over its outputs, and bad input.
"""
import json
import signal
import time
from pathlib import Path

import pytest

from conftest import finish, start_python

# The demo sweep cut down to 6 steps a model: 3 + 1 + 1 random models at 3 levels (3 for Fig. 2), 3 baselines,
# 3 formula models.
TINY_SWEEP = ["--config=configs/sweep.py:demo", "--config.train.total_steps=6",
              "--config.train.log_every_steps=3"]
ONE_DEVICE = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def start(module, *args, env=None):
  return start_python(["-m", module, *args], env=env)


def result_ids(workdir):
  path = Path(workdir) / "results.jsonl"
  return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def killed_and_rerun(tmp_path_factory):
  """A sweep killed (SIGKILL) after its second model, then the same command again."""
  workdir = tmp_path_factory.mktemp("sweep")
  args = [*TINY_SWEEP, f"--workdir={workdir}"]
  process = start("tinynet_jax.main", *args, env=ONE_DEVICE)
  deadline = time.time() + 600
  while time.time() < deadline and len(result_ids(workdir)) < 2 and process.poll() is None:
    time.sleep(0.1)
  process.send_signal(signal.SIGKILL)
  process.communicate()
  interrupted_after = len(result_ids(workdir))
  code, out, err = finish(start("tinynet_jax.main", *args, env=ONE_DEVICE), timeout=900)
  assert code == 0, err
  return workdir, interrupted_after, out, err


def test_a_killed_sweep_completes_with_every_model_exactly_once(killed_and_rerun):
  workdir, interrupted_after, _, _ = killed_and_rerun
  plan = json.loads((workdir / "sweep.json").read_text())
  planned = [m["id"] for m in plan["models"]]
  assert len(planned) == 8 and 2 <= interrupted_after < 11
  ids = result_ids(workdir)
  formula_ids = ["F0.25", "F0.125", "F0.0625"]
  assert sorted(ids) == sorted(planned + formula_ids) and len(ids) == len(set(ids)) == 11
  for stat in plan["acceptance"]:
    assert 0 < stat["acceptance_rate"] <= 1


def test_the_sweep_writes_results_formula_figures_and_report(killed_and_rerun):
  workdir, _, out, err = killed_and_rerun
  rows = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
  for row in rows:
    assert row["dataset"] == "digits" and row["steps"] == 6 and 0 <= row["top1"] <= 1
    assert row["resolution"] == int(32 * row["r"]) and row["macs"] > 0 and row["params"] > 0
  for name in ("formula.json", "report.md", "fig2_importance.png", "fig2_importance.svg", "fig3_formula.png",
               "fig3_formula.svg", "fig6_accuracy_vs_flops.png", "fig6_accuracy_vs_flops.svg"):
    assert (workdir / name).stat().st_size > 0, name
  report = (workdir / "report.md").read_text()
  assert "digits" in report and "fig6_accuracy_vs_flops.png" in report
  assert "fig2_importance.png" in report  # the 0.25 level's 3 models
  assert f"report: {workdir / 'report.md'}" in out
  assert "[sweep 11/11]" in err  # the progress line of the last model
  assert not [p for p in workdir.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_formula_cli_reads_the_sweeps_fit(killed_and_rerun):
  workdir, _, _, _ = killed_and_rerun
  formula = json.loads((workdir / "formula.json").read_text())
  b0 = formula["b0_macs"]
  code, out, err = finish(start("tinynet_jax.formula", "--flops", str(0.3 * b0), "--from",
                                str(workdir / "formula.json"), "--json", "--emit-config"))
  assert code == 0, err
  model = json.loads(out)["models"][0]
  assert abs(model["macs"] / (0.3 * b0) - 1) <= 0.05 and model["base_resolution"] == 32
  assert "--config.base_resolution=32" in model["command"]


def test_analyze_cli_over_the_results_file(killed_and_rerun, tmp_path):
  workdir, _, _, _ = killed_and_rerun
  code, out, err = finish(start("tinynet_jax.analyze", str(workdir / "results.jsonl"), "--out", str(tmp_path),
                                "--fit-on", "level_best"))
  assert code == 0, err
  assert (tmp_path / "report.md").exists() and (tmp_path / "formula.json").exists()


def test_formula_cli_paper_preset():
  code, out, err = finish(start("tinynet_jax.formula", "--flops", "150M", "24M", "--emit-config"))
  assert code == 0, err
  assert "paper preset" in out and "python -m tinynet_jax.main" in out


BAD = [
    ("tinynet_jax.formula", ["--flops", "1K"], "no network reaches"),
    ("tinynet_jax.formula", ["--flops", "abc"], "not a FLOPs budget"),
    ("tinynet_jax.formula", ["--flops", "1M", "--from", "/nonexistent/formula.json"], "cannot read formula"),
    ("tinynet_jax.analyze", ["{empty}"], "holds no results"),
    ("tinynet_jax.analyze", ["{corrupt}"], "not a JSON line"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.levels=(0.5,0.5)"], "repeat"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.r_range=(1.0,0.5)"], "r_range"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.shard=2/2"], "shard"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo,index=99"], "out of range"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.fit_on=best"], "fit_on"),
]


@pytest.mark.parametrize("module, args, needle", BAD, ids=[b[2] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(module, args, needle, tmp_path):
  (tmp_path / "empty.jsonl").write_text("")
  (tmp_path / "corrupt.jsonl").write_text("{not json\n")
  workdir = tmp_path / "run"
  args = [a.format(empty=tmp_path / "empty.jsonl", corrupt=tmp_path / "corrupt.jsonl") for a in args]
  if module == "tinynet_jax.main":
    args.append(f"--workdir={workdir}")
  code, out, err = finish(start(module, *args))
  assert code == 2, err
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
  assert needle in err
  assert not workdir.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.jsonl", "empty.jsonl"]


def test_the_rubiks_cube_colab_opens_the_sweep(killed_and_rerun):
  """colabs/rubiks_cube.ipynb, headless, on this test's finished sweep (it trains only when there is none)."""
  from test_colabs import execute
  workdir = killed_and_rerun[0]
  notebook = execute("rubiks_cube.ipynb", env={"TINYNET_SWEEP_DIR": str(workdir)})
  text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
  assert "frontier" in text and "c=0.125" in text
  assert sum("image/png" in o.get("data", {}) for c in notebook.cells if c.cell_type == "code"
             for o in c.outputs) == 3  # Fig. 2, 3 and 6
