"""Command-line tools: output, JSON, and the bad-input contract (one line, exit 2, no traceback, no files)."""
import json
import os

import numpy as np
import pytest

from tinynet_jax.checkpoints import write_ckpt
from tinynet_jax.tools import allocator, cli, convert, flops
from tinynet_jax.costs import count_macs, count_params
from tinynet_jax.arch import ZOO, model_spec


FLOPS = "python -m tinynet_jax.flops"
CONVERT = "python -m tinynet_jax.convert"


def call(main, prog, argv, capsys):
  try:
    code = cli.run(main, prog, argv)
  except SystemExit as e:  # argparse usage errors
    code = e.code
  out, err = capsys.readouterr()
  return code, out, err


def test_flops_zoo_table(capsys):
  code, out, _ = call(flops.main, FLOPS, [], capsys)
  assert code == 0
  for name in ZOO:
    assert name in out
  assert "6,187,972" in out and "336.9M" in out  # TinyNet-A params and MACs


def test_flops_json_matches_the_counters(capsys):
  code, out, _ = call(flops.main, FLOPS, ["--json"], capsys)
  rows = {row["model"]: row for row in json.loads(out)}
  assert set(rows) == set(ZOO)
  for name, row in rows.items():
    assert row["macs"] == count_macs(model_spec(name)) and row["params"] == count_params(model_spec(name))
  code, out, _ = call(flops.main, FLOPS, ["--r", "0.7", "--d", "0.9", "--w", "0.6", "--rules", "efficientnet",
                                            "--resolution", "160", "--json"], capsys)
  report = json.loads(out)
  spec = model_spec(r=0.7, d=0.9, w=0.6, rules="efficientnet", resolution=160)
  assert report["macs"] == count_macs(spec) and report["resolution"] == 160
  assert len(report["stages"]) == 9 and sum(s["macs"] for s in report["stages"]) == report["macs"]


def test_flops_one_model_table(capsys):
  code, out, _ = call(flops.main, FLOPS, ["--model", "tinynet_e"], capsys)
  assert code == 0
  assert "input=106px" in out and "stage6" in out and "96->160" in out


BAD_FLOPS_ARGS = [
    ["--r", "0"], ["--r", "-1"], ["--w", "nan"], ["--d", "inf"], ["--r", "abc"], ["--model", "tinynet_z"],
    ["--model", "tinynet_a", "--r", "0.5"], ["--resolution", "0", "--model", "tinynet_a"],
    ["--resolution", "1.5", "--r", "0.5"], ["--resolution", "128"], ["--r", "0.001"], ["--rules", "resnet"],
    ["--phi", "-1", "--w", "0.5"], ["--bogus"],
]


@pytest.mark.parametrize("argv", BAD_FLOPS_ARGS, ids=" ".join)
def test_flops_bad_input_is_one_line_exit_2(argv, capsys):
  code, out, err = call(flops.main, FLOPS, argv, capsys)
  assert code == 2 and out == ""
  assert err.count("\n") == 1 and err.startswith(f"{FLOPS}: error: ")


BAD_CONVERT_ARGS = [  # {tmp} is the test's directory
    ["--model", "tinynet_a", "--out", "{tmp}/out"],  # no checkpoint
    ["--timm-checkpoint", "{tmp}/missing.pth", "--model", "tinynet_a", "--out", "{tmp}/out"],
    ["--timm-checkpoint", "{tmp}/corrupt.pth", "--model", "tinynet_a", "--out", "{tmp}/out"],
    ["--timm-checkpoint", "{tmp}/corrupt.safetensors", "--model", "tinynet_a", "--out", "{tmp}/out"],
    ["--timm-checkpoint", "{tmp}/corrupt.pth", "--out", "{tmp}/out"],  # no architecture
    ["--timm-checkpoint", "{tmp}/corrupt.pth", "--model", "tinynet_a", "--w", "0.5", "--out", "{tmp}/out"],
    ["--timm-checkpoint", "{tmp}/corrupt.pth", "--model", "nope", "--out", "{tmp}/out"],
    ["--timm-checkpoint", "{tmp}/corrupt.pth", "--r", "-0.5", "--out", "{tmp}/out"],
    ["--timm-checkpoint", "{tmp}/corrupt.pth", "--model", "tinynet_a", "--out", "{tmp}/exists"],
    ["--timm-checkpoint", "{tmp}/model.ckpt", "--model", "tinynet_a", "--out", "{tmp}/out"],  # a MindSpore file
    ["--mindspore-checkpoint", "{tmp}/missing.ckpt", "--model", "tinynet_a", "--out", "{tmp}/out"],
    ["--mindspore-checkpoint", "{tmp}/corrupt.pth", "--model", "tinynet_a", "--out", "{tmp}/out"],
    ["--mindspore-checkpoint", "{tmp}/corrupt.safetensors", "--model", "tinynet_a", "--out", "{tmp}/out"],
    ["--mindspore-checkpoint", "{tmp}/model.ckpt", "--model", "tinynet_a", "--out", "{tmp}/out"],  # wrong model
    ["--mindspore-checkpoint", "{tmp}/model.ckpt", "--model", "tinynet_a", "--ema", "--out", "{tmp}/out"],
    ["--mindspore-checkpoint", "{tmp}/model.ckpt", "--timm-checkpoint", "{tmp}/corrupt.pth", "--model",
     "tinynet_a", "--out", "{tmp}/out"],
]


@pytest.mark.parametrize("argv", BAD_CONVERT_ARGS, ids=" ".join)
def test_convert_bad_input_is_one_line_exit_2_and_writes_nothing(argv, tmp_path, capsys):
  (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
  (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 16)
  write_ckpt(tmp_path / "model.ckpt", {"conv_stem.weight": np.ones((8, 3, 3, 3), np.float32)})
  (tmp_path / "exists").mkdir()
  before = sorted(os.listdir(tmp_path))
  code, out, err = call(convert.main, CONVERT, [a.format(tmp=tmp_path) for a in argv], capsys)
  assert code == 2, err
  assert err.count("\n") == 1 and err.startswith(f"{CONVERT}: error: ")
  assert sorted(os.listdir(tmp_path)) == before


# python -m tinynet_jax.main with configs/eval.py: each field is checked before the checkpoint is even opened.
BAD_EVAL_ARGS = [
    (["--config=configs/eval.py"], "checkpoint must be a model checkpoint or a training workdir (a path), got ''"),
    (["--config=configs/eval.py:checkpoint=/nonexistent,dataset=synthetic,batch_size=0"],
     "batch_size must be a positive integer, got 0"),
    (["--config=configs/eval.py:checkpoint=/nonexistent,dataset=synthetic,crop_pct=1.5"],
     "crop_pct must be in (0, 1], got 1.5"),
    (["--config=configs/eval.py:checkpoint=/nonexistent,dataset=synthetic", "--config.resolution=0"],
     "resolution must be a positive integer, got 0"),
    (["--config=configs/eval.py:checkpoint=/nonexistent,dataset=synthetic", "--config.dataset_options.num_eval=0"],
     "dataset_options.num_eval must be a positive integer, got 0"),
]


@pytest.mark.parametrize("argv, needle", BAD_EVAL_ARGS, ids=[b[1] for b in BAD_EVAL_ARGS])
def test_eval_config_bad_input_is_one_line_exit_2_and_writes_nothing(argv, needle, tmp_path, capsys, monkeypatch):
  from conftest import CLI  # the `cli` fixture's runner (this module's `cli` is tinynet_jax.tools.cli)
  code, out, err = CLI(capsys, monkeypatch)("tinynet_jax.main", *argv, f"--workdir={tmp_path / 'e'}")
  assert code == 2, err
  assert err.count("\n") == 1 and err.startswith("python -m tinynet_jax.main: error: ") and needle in err, err
  assert not any(tmp_path.iterdir())


def test_real_process_exit_code_and_no_jax_import_for_flops(run_module, run_python):
  result = run_module("tinynet_jax.flops", "--w", "-1")
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.strip() == "python -m tinynet_jax.flops: error: argument --w: must be a finite number > 0, got '-1'"
  # The counters are pure Python: the zoo table starts without importing jax.
  done = run_python("-c", "import sys, runpy; sys.argv = ['flops']; import tinynet_jax.tools.flops as f; f.main([]); "
                          "assert 'jax' not in sys.modules and 'flax' not in sys.modules")
  assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not allocator.on_glibc(), reason="the malloc tunables are glibc's")
def test_the_main_entry_reexecs_once_with_glibc_malloc_tunables(run_python, monkeypatch, tmp_path):
  """`python -m tinynet_jax.main` restarts itself once with GLIBC_TUNABLES set (read only at process start);
  a caller's own GLIBC_TUNABLES, or TINYNET_MALLOC_TUNING=0, is left alone."""
  script = ("import os, sys; from tinynet_jax.tools.allocator import reexec_with_tuned_malloc; print('start', "
            "sys.argv[1:], flush=True); reexec_with_tuned_malloc(); print(os.environ.get('GLIBC_TUNABLES'))")
  monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
  monkeypatch.delenv("TINYNET_MALLOC_TUNING", raising=False)
  tuned = run_python("-c", script, "--config=x")
  assert tuned.stdout.splitlines() == ["start ['--config=x']", "start ['--config=x']", allocator.TUNABLES], tuned.stderr
  monkeypatch.setenv("TINYNET_MALLOC_TUNING", "0")
  assert run_python("-c", script).stdout.splitlines() == ["start []", "None"]
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1")
  monkeypatch.delenv("TINYNET_MALLOC_TUNING")
  assert run_python("-c", script).stdout.splitlines() == ["start []", "glibc.malloc.arena_max=1"]
  # The shim itself restarts (a sitecustomize reports each interpreter start's GLIBC_TUNABLES), and the entry point
  # still gives its one-line error and exit 2 after the restart.
  monkeypatch.delenv("GLIBC_TUNABLES")
  (tmp_path / "sitecustomize.py").write_text("import os, sys\nprint('start', os.environ.get('GLIBC_TUNABLES'), "
                                             "file=sys.stderr)\n")
  monkeypatch.setenv("PYTHONPATH", str(tmp_path))
  bad = run_python("-m", "tinynet_jax.main", "--workdir=/nonexistent/x")
  lines = bad.stderr.strip().splitlines()
  assert [line for line in lines if line.startswith("start ")] == ["start None", f"start {allocator.TUNABLES}"]
  assert bad.returncode == 2 and lines[-1].startswith("python -m tinynet_jax.main: error:")
