"""The training engine end to end: outputs, exact resume after kill -9, two processes, checkpoint evaluation, bad
input (SIGTERM, non-finite losses, the best across a resume, resident data and real learning: test_train_runs.py).

Runs use tiny networks at small resolutions (XLA:CPU is slow on depthwise-conv gradients). One reference run
serves several tests; runs that need no process of their own (no signal, no other device count) go through
`python -m tinynet_jax.main`'s entry point in this process (the `cli` fixture).
"""
import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import finish, start_python as start

TINY = ["--config.r=0.15", "--config.d=0.3", "--config.w=0.25", "--config.model="]


def main_args(workdir, *overrides, arg="dataset=synthetic"):
  return ["-m", "tinynet_jax.main", *flags(workdir, *overrides, arg=arg)]


def flags(workdir, *overrides, arg="dataset=synthetic"):
  """The flags of `python -m tinynet_jax.main` for a tiny run on synthetic data."""
  return [f"--config=configs/train.py:{arg}", f"--workdir={workdir}", "--config.batch_size=16",
          "--config.log_every_steps=2", *TINY, *overrides]


def checkpoint_steps(workdir):
  root = Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit()) if root.exists() else []


def final_params(workdir):
  """The newest checkpoint's state, restored onto this process's first device whatever topology saved it."""
  from tinynet_jax.checkpoints.training import restore_latest
  restored = restore_latest(workdir)
  assert restored is not None, f"no readable checkpoint in {workdir}"
  state, step = restored
  return step, state


SCHEDULE = ["--config.total_steps=8", "--config.checkpoint_every_steps=2", "--config.eval_every_steps=4",
            "--config.dataset_options.num_train=256", "--config.dataset_options.num_eval=40",
            "--config.dataset_options.num_classes=10"]


# Cross-replica BN, so that the reference also stands for "one process" in the two-process test.
REFERENCE = [*SCHEDULE, "--config.sync_bn=True"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """8 steps on 8 devices in one process: the run the killed, the two-process and the eval runs must match."""
  workdir = tmp_path_factory.mktemp("reference")
  code, out, err = finish(start(main_args(workdir, *REFERENCE)))
  assert code == 0, err
  return workdir


def test_run_writes_its_records(reference_run):
  workdir = reference_run
  config = json.loads((workdir / "config.json").read_text())
  assert config["total_steps"] == 8 and config["dataset"] == "synthetic" and config["sync_bn"]
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [l for l in lines if l["split"] == "train"]
  assert [l["step"] for l in train] == [2, 4, 6, 8]
  assert all(np.isfinite(l["loss"]) and l["lr"] > 0 and l["images_per_second"] > 0 for l in train)
  final = json.loads((workdir / "final_metrics.json").read_text())
  for key in ("top1", "top5", "ema_top1", "ema_top5", "params", "macs", "images_per_second", "wall_seconds"):
    assert key in final
  assert 0 <= final["top1"] <= final["top5"] <= 1
  assert checkpoint_steps(workdir)[-1] == 8
  evals = [l for l in lines if l["split"] == "eval"]
  assert [l["step"] for l in evals] == [4, 8]
  assert {k: final[k] for k in ("top1", "ema_top1")} == {k: evals[-1][k] for k in ("top1", "ema_top1")}
  assert_best_matches_the_eval_records(final, evals)


def assert_best_matches_the_eval_records(final, evals):
  """final_metrics.json's "best": per set of weights, the first eval of the highest top-1, with its metrics; its
  "best_checkpoint" the EMA one (best_metric's default)."""
  for weights, prefix in (("raw", ""), ("ema", "ema_")):
    top = max(l[prefix + "top1"] for l in evals)
    first = next(l for l in evals if l[prefix + "top1"] == top)
    expected = {"step": first["step"], "top1": top, "top5": first[prefix + "top5"]}
    if weights == "raw":
      expected["loss"] = first["loss"]
    assert final["best"][weights] == expected, (weights, final["best"], evals)
  assert final["best_checkpoint"] == {"metric": "ema_top1", "step": final["best"]["ema"]["step"],
                                      "value": final["best"]["ema"]["top1"]}


def test_kill_9_and_rerun_reproduces_the_uninterrupted_run_bit_for_bit(reference_run, tmp_path):
  args = main_args(tmp_path, *REFERENCE)
  process = start(args)
  deadline = time.time() + 300
  while time.time() < deadline and not [s for s in checkpoint_steps(tmp_path) if s >= 4]:
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.communicate()
  assert process.returncode == -signal.SIGKILL
  assert checkpoint_steps(tmp_path)[-1] < 8  # really interrupted
  code, _, err = finish(start(args))
  assert code == 0, err
  step, resumed = final_params(tmp_path)
  reference_step, reference = final_params(reference_run)
  assert step == reference_step == 8
  import jax
  for ours, theirs in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference)):
    assert np.array_equal(ours, theirs)
  best = json.loads((tmp_path / "final_metrics.json").read_text())["best"]
  assert best == json.loads((reference_run / "final_metrics.json").read_text())["best"]


BAD = [
    (["--config=configs/train.py:dataset=no_such_dataset"], "no_such_dataset"),
    (["--config=configs/train.py:model=tinynet_q"], "tinynet_q"),
    (["--config=configs/train.py:recipe=fast"], "recipe"),
    (["--config=configs/train.py", "--config.batchsize=8"], "batchsize"),
    (["--config=configs/train.py:dataset=digits", "--config.batch_size=12"], "divide"),
    (["--config=configs/train.py:dataset=digits", "--config.r=-1", "--config.model="], "r must be"),
    (["--config=configs/train.py:dataset=digits", "--config.best_metric=top5"], "best_metric"),
    (["--config=configs/train.py:dataset=imagenet2012", "--config.data_dir=/nonexistent/tfds"], "manual"),
    (["--config=configs/no_such_config.py"], "no_such_config.py"),
    # Values that used to be replaced by a default, dropped, or refused only after the workdir was written.
    (["--config=configs/train.py:r=0"], "r must be a finite number > 0, got 0.0"),
    (["--config=configs/train.py:model=tinynet_e,w=0.5"], "give either model='tinynet_e' or r/d/w"),
    (["--config=configs/train.py:dataset=synthetic,runlocal,runlocal"], "config argument runlocal is given twice"),
    (["--config=configs/train.py:dataset=synthetic", "--config.eval_every_steps=0"],
     "eval_every_steps must be a positive integer, got 0"),
    (["--config=configs/train.py:dataset=synthetic", "--config.optimizer=adam"],
     "optimizer must be one of rmsprop_tf, sgd, got 'adam'"),
    (["--config=configs/train.py:dataset=synthetic", "--config.seed=-1"], "seed must be an integer in [0, "),
    (["--config=configs/train.py:dataset=synthetic", "--config.momentum=1.5"], "momentum must be in [0, 1), got 1.5"),
    (["--config=configs/train.py:dataset=synthetic", "--config.label_smoothing=nan"],
     "label_smoothing must be in [0, 1), got nan"),
    (["--config=configs/train.py:dataset=synthetic", "--config.augment.crop_scale=(0.5,)"],
     "augment.crop_scale must be a (low, high) pair"),
    (["--config=configs/train.py:dataset=synthetic", "--config.data_dir=None"], "data_dir must be a non-empty"),
    (["--config=configs/train.py:dataset=synthetic", "--config.resident_size=32"],
     "resident_size=32 is the size of device-resident images"),
]
# These run in a real process too: the exit code and stderr of the process itself (the rest run in this one).
REAL_PROCESS = {"no_such_config.py", "divide", "r must be a finite number > 0, got 0.0"}


@pytest.mark.parametrize("args, needle", BAD, ids=[b[1] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, needle, tmp_path, cli):
  workdir = tmp_path / "run"
  for run in (cli, cli.real) if needle in REAL_PROCESS else (cli,):
    code, out, err = run("tinynet_jax.main", f"--workdir={workdir}", *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert needle in err
    assert not workdir.exists()


def test_two_processes_equal_one_process(reference_run, tmp_path):
  """jax.distributed on localhost: 2 processes x 4 devices train like 1 process x 8 devices (the reference)."""
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  four = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  workers = [start(main_args(tmp_path / "two", *REFERENCE, f"--coordinator_address=localhost:{port}",
                             "--num_processes=2", f"--process_id={i}"), env=four) for i in range(2)]
  for process in workers:
    code, _, err = finish(process)
    assert code == 0, err
  step, two = final_params(tmp_path / "two")
  reference_step, one = final_params(reference_run)
  assert step == reference_step == 8
  import jax
  for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  final_two = json.loads((tmp_path / "two" / "final_metrics.json").read_text())
  final_one = json.loads((reference_run / "final_metrics.json").read_text())
  assert final_two["top1"] == final_one["top1"]


def test_eval_config_scores_a_training_workdir_like_the_run_itself(reference_run, tmp_path, cli):
  """configs/eval.py on the reference run's workdir reproduces its final top-1 / top-5 (raw and EMA), and with
  `best` the best checkpoint's recorded EMA top-1."""
  final = json.loads((reference_run / "final_metrics.json").read_text())
  best = final["best_checkpoint"]
  for arg, expected in (("", final["top1"]), (",ema", final["ema_top1"]), (",ema,best", best["value"])):
    workdir = tmp_path / (arg.replace(",", "_") or "raw")
    code, out, err = cli("tinynet_jax.main",
                         f"--config=configs/eval.py:checkpoint={reference_run},dataset=synthetic{arg},batch_size=16",
                         f"--workdir={workdir}", "--config.dataset_options.num_classes=10",
                         "--config.dataset_options.num_eval=40")
    assert code == 0, err
    result = json.loads((workdir / "eval_metrics.json").read_text())
    assert result["examples"] == 40 and result["top1"] == pytest.approx(expected, abs=1e-6), (result, final)
    assert "top-1" in out
  assert result["source"] == f"training workdir, best step {best['step']} by ema_top1 (EMA)"
