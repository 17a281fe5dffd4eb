"""The benchmark CLI runs and writes well-formed JSON (its numbers are measurements, not test assertions)."""
import json

import pytest


def test_benchmark_runs_ours_and_timm_and_writes_json(run_module, tmp_path):
  pytest.importorskip("timm")
  out = tmp_path / "bench.json"
  result = run_module("tinynet_jax.benchmark", "--models", "tinynet_e", "--batch", "8", "--resolution", "32",
                      "--steps", "2", "--warmup", "1", "--compare", "timm", "--timm-modes", "eager",
                      "--json", out)
  assert result.returncode == 0, result.stderr
  record = json.loads(out.read_text())
  rows = record["rows"]
  assert {(r["impl"], r["mode"]) for r in rows} == {
      ("tinynet_jax", "train"), ("tinynet_jax", "eval"), ("tinynet_jax", "train_resident"),
      ("timm_eager", "train"), ("timm_eager", "eval")}
  for row in rows:
    assert row["model"] == "tinynet_e" and row["resolution"] == 32 and row["batch"] == 8
    assert row["images_per_second"] > 0 and row["step_ms"] > 0
  assert all(r["compile_seconds"] > 0 for r in rows if r["impl"] == "tinynet_jax")
  assert {(r["mode"], r["versus"]) for r in record["ratios"]} == {
      ("train", "timm_eager"), ("eval", "timm_eager"), ("train_resident", "timm_eager")}
  assert record["environment"]["backend"] == "cpu" and "timm" in record["environment"]
  assert "ours / timm_eager" in result.stdout


@pytest.mark.parametrize("args, needle", [(["--models", "tinynet_q"], "tinynet_q"), (["--batch", "7"], "divide"),
                                          (["--modes", "fly"], "train")])
def test_bad_input_is_one_line_exit_2(run_module, tmp_path, args, needle):
  result = run_module("tinynet_jax.benchmark", *args, "--json", tmp_path / "b.json")
  assert result.returncode == 2 and needle in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "b.json").exists()


def test_input_pipeline_throughput_is_measured():
  from tinynet_jax.data.tfdata import throughput
  jpegs = throughput.synthetic_jpegs(count=4, height=120, width=160)
  assert all(j[:2] == b"\xff\xd8" for j in jpegs)  # JPEG files
  for recipe in throughput.RECIPES:
    assert throughput.images_per_second(recipe, threads=1, resolution=32, images=64, jpegs=jpegs) > 0
