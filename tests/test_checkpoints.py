"""Model checkpoints: save/load round trip, the convert CLI, strictness, atomicity, torch-free loading."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

import tinynet_jax
from tinynet_jax.checkpoints import abstract_variables, export_state_dict, read_metadata, save
from tinynet_jax.errors import CheckpointError

SPEC = tinynet_jax.model_spec(r=0.3, d=0.4, w=0.3)


def random_variables(model, seed=0):
  """Random values of the right shapes, without compiling model.init."""
  rng = np.random.RandomState(seed)
  return jax.tree.map(lambda leaf: rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32),
                      abstract_variables(model))


def test_save_load_round_trip(tmp_path):
  model = tinynet_jax.create_model(SPEC, num_classes=7)
  variables = random_variables(model)
  path = save(tmp_path / "ckpt", SPEC, variables, num_classes=7, metadata={"note": "test"})
  assert read_metadata(path)["metadata"] == {"note": "test"}
  loaded_model, loaded, spec = tinynet_jax.load(path)
  assert spec == SPEC and loaded_model.num_classes == 7
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)
  x = jnp.ones((1, SPEC.resolution, SPEC.resolution, 3))
  bf16_model, _, _ = tinynet_jax.load(path, dtype=jnp.bfloat16)
  assert bf16_model.dtype == jnp.bfloat16
  np.testing.assert_allclose(jax.jit(loaded_model.apply)(loaded, x), jax.jit(model.apply)(variables, x))
  assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary directories left behind


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
  model = tinynet_jax.create_model(SPEC, num_classes=3)
  save(tmp_path / "ckpt", SPEC, random_variables(model), num_classes=3)
  with pytest.raises(CheckpointError, match="already exists"):
    save(tmp_path / "ckpt", SPEC, random_variables(model, 1), num_classes=3)
  save(tmp_path / "ckpt", SPEC, random_variables(model, 1), num_classes=3, overwrite=True)
  _, loaded, _ = tinynet_jax.load(tmp_path / "ckpt")
  jax.tree.map(np.testing.assert_array_equal, loaded, random_variables(model, 1))
  assert sorted(os.listdir(tmp_path)) == ["ckpt"]


@pytest.mark.parametrize("corrupt", ["no_dir", "no_metadata", "bad_json", "wrong_format", "no_variables"])
def test_load_rejects_broken_checkpoints(tmp_path, corrupt):
  model = tinynet_jax.create_model(SPEC, num_classes=3)
  path = save(tmp_path / "ckpt", SPEC, random_variables(model), num_classes=3)
  meta = path / "tinynet.json"
  if corrupt == "no_dir":
    path = tmp_path / "missing"
  elif corrupt == "no_metadata":
    meta.unlink()
  elif corrupt == "bad_json":
    meta.write_text("{")
  elif corrupt == "wrong_format":
    meta.write_text(json.dumps({"format": "something else"}))
  else:
    import shutil
    shutil.rmtree(path / "variables")
  with pytest.raises(CheckpointError):
    tinynet_jax.load(path)


def _write_safetensors(path, model, seed=0):
  save_file(export_state_dict(random_variables(model, seed)), str(path))


def test_convert_cli_from_safetensors_and_load_without_torch(tmp_path, run_module, run_python):
  model = tinynet_jax.create_model(SPEC, num_classes=5)
  source = tmp_path / "weights.safetensors"
  _write_safetensors(source, model)
  out = tmp_path / "converted"
  result = run_module("tinynet_jax.convert", "--timm-checkpoint", source, "--r", 0.3, "--d", 0.4, "--w", 0.3,
                      "--out", out)
  assert result.returncode == 0, result.stderr
  assert "wrote" in result.stdout
  # Loading needs no torch: block its import in a fresh interpreter.
  code = ("import sys; sys.modules['torch'] = None; import tinynet_jax, numpy as np; "
          f"m, v, s = tinynet_jax.load({str(out)!r}); "
          "print(m.num_classes, s.resolution, float(np.sum(v['params']['classifier']['bias'])))")
  done = run_python("-c", code)
  assert done.returncode == 0, done.stderr
  expected_bias = float(np.sum(random_variables(model)["params"]["classifier"]["bias"]))
  classes, resolution, bias = done.stdout.split()
  assert (int(classes), int(resolution)) == (5, SPEC.resolution)
  assert float(bias) == pytest.approx(expected_bias, rel=1e-6)


def test_convert_reads_wrapped_pth_checkpoints(tmp_path):
  torch = pytest.importorskip("torch")
  from tinynet_jax.checkpoints import convert
  model = tinynet_jax.create_model(SPEC, num_classes=4)
  state = {"module." + k: torch.from_numpy(v) for k, v in export_state_dict(random_variables(model)).items()}
  torch.save({"state_dict": state, "epoch": 3}, tmp_path / "train.pth")
  path = convert(str(tmp_path / "train.pth"), SPEC, str(tmp_path / "out"))
  _, loaded, _ = tinynet_jax.load(path)
  jax.tree.map(np.testing.assert_array_equal, loaded, random_variables(model))


def test_failed_convert_writes_nothing(tmp_path, run_module):
  other = tinynet_jax.create_model(tinynet_jax.model_spec(r=0.3, d=0.4, w=0.5), num_classes=5)
  source = tmp_path / "other.safetensors"
  _write_safetensors(source, other)
  result = run_module("tinynet_jax.convert", "--timm-checkpoint", source, "--r", 0.3, "--d", 0.4, "--w", 0.3,
                      "--out", tmp_path / "out")
  assert result.returncode == 2
  assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
  assert "wrong shape" in result.stderr
  assert sorted(os.listdir(tmp_path)) == ["other.safetensors"]


def test_load_reads_a_training_workdirs_newest_step_raw_or_ema(tmp_path):
  """`tinynet_jax.load` of a training workdir goes through the training checkpoints' one reader."""
  from tinynet_jax.checkpoints.training import Checkpointer
  from tinynet_jax.train.config import base_config
  model = tinynet_jax.create_model(SPEC, num_classes=6)
  config = base_config()
  config.model, config.r, config.d, config.w, config.dataset = "", 0.3, 0.4, 0.3, "synthetic"
  (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
  checkpointer = Checkpointer(tmp_path)
  for step in (1, 2):
    raw, ema = random_variables(model, step), random_variables(model, 10 + step)
    checkpointer.save(step, {"step": np.int32(step), "params": raw["params"], "batch_stats": raw["batch_stats"],
                             "opt_state": {}, "ema_params": ema["params"], "ema_batch_stats": ema["batch_stats"]})
  checkpointer.close()
  loaded_model, loaded, spec = tinynet_jax.load(tmp_path)
  assert spec == SPEC and loaded_model.num_classes == 6
  jax.tree.map(np.testing.assert_array_equal, loaded, random_variables(model, 2))
  _, averaged, _ = tinynet_jax.load(tmp_path, ema=True)
  jax.tree.map(np.testing.assert_array_equal, averaged, random_variables(model, 12))
  (tmp_path / "config.json").write_text("{")
  with pytest.raises(CheckpointError, match="config.json"):
    tinynet_jax.load(tmp_path)
