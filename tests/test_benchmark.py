"""The benchmark CLI runs and writes well-formed JSON (its numbers are measurements, not test assertions)."""
import json

import pytest


def test_benchmark_runs_ours_and_timm_and_writes_json(run_module, tmp_path, monkeypatch):
  pytest.importorskip("timm")
  # One CPU device, as on a laptop: the 8 fake devices of the other tests cost this run 84 s instead of 59 s, and
  # the data-parallel steps are the train tests' subject.
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
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
def test_bad_input_is_one_line_exit_2(cli, tmp_path, args, needle):
  # In this process (conftest's `cli`); the "divide" case in a real process too, for its own exit code and stderr.
  for run in (cli, cli.real) if needle == "divide" else (cli,):
    code, _, err = run("tinynet_jax.benchmark", *args, "--json", tmp_path / "b.json")
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "b.json").exists()


def test_input_pipeline_throughput_is_measured():
  from tinynet_jax.data.tfdata import throughput
  jpegs = throughput.synthetic_jpegs(count=4, height=120, width=160)
  assert all(j[:2] == b"\xff\xd8" for j in jpegs)  # JPEG files
  for recipe in throughput.RECIPES:
    assert throughput.images_per_second(recipe, threads=1, resolution=32, images=64, jpegs=jpegs) > 0


def test_the_benchmark_measures_the_trainers_own_steps():
  """Ours is the engine built from a training config: TinyNet-B's drop path, the EMA warm-up, the BN axis and
  the depthwise implementation are those the config trains with (they had drifted when the benchmark built
  its own model and step)."""
  import jax
  from tinynet_jax.train import parallel
  from tinynet_jax.train.benchmark import benchmark_config
  from tinynet_jax.train.config import model_spec_from_config
  from tinynet_jax.train.engine import create_engine
  config = benchmark_config("tinynet_b", "train_resident", batch=8, resolution=32)
  config.sync_bn, config.depthwise_impl, config.ema_warmup = True, "xla", True
  assert config.drop_path_rate == 0.1 and config.data_on_device and config.dataset == "synthetic"
  engine = create_engine(config, model_spec_from_config(config), 1000, parallel.make_mesh())
  model = engine.model
  assert (model.drop_rate, model.drop_path_rate, model.bn_axis_name, model.depthwise_impl) == (
      0.2, 0.1, parallel.AXIS, "xla")
  assert engine.step_options["ema_warmup"] is True and engine.step_options["ema_decay"] == config.ema_decay
  assert engine.train_batch["image"].shape == (8, 32, 32, 3) and jax.device_count() == 8
