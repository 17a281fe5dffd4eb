"""The training engine end to end: outputs, exact resume after kill -9, SIGTERM, the best eval and checkpoint
across a resume, real learning, bad input.

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
from tinynet_jax.train import parallel

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


def test_sigterm_saves_at_the_step_boundary_and_exits_0(tmp_path):
  args = main_args(tmp_path, "--config.total_steps=1000", "--config.checkpoint_every_steps=1000",
                   "--config.eval_every_steps=1000",  # eval steps are saved too: none before the signal
                   "--config.dataset_options.num_train=256", "--config.dataset_options.num_eval=16",
                   "--config.dataset_options.num_classes=10")
  process = start(args)
  deadline = time.time() + 300
  while time.time() < deadline and not (tmp_path / "metrics.jsonl").exists():
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  code, _, err = finish(process)
  assert code == 0, err
  steps = checkpoint_steps(tmp_path)
  assert len(steps) == 1 and 2 <= steps[0] < 1000
  assert not (tmp_path / "final_metrics.json").exists()


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, cli):
  # A checkpoint every step: step 1's loss is finite (the initial weights), then the 1e30 learning rate blows
  # the loss up, so a good checkpoint exists to be kept (every 2 steps, none would: a check that cannot fail).
  args = flags(tmp_path, "--config.total_steps=12", "--config.checkpoint_every_steps=1",
               "--config.lr=1e30", "--config.warmup_epochs=0", "--config.opt_eps=1e-30",
               "--config.dataset_options.num_train=256", "--config.dataset_options.num_eval=16",
               "--config.dataset_options.num_classes=10")
  code, _, err = cli("tinynet_jax.main", *args)
  assert code == 2
  assert err.strip().splitlines()[-1].startswith("python -m tinynet_jax.main: error: non-finite loss")
  import jax
  step, state = final_params(tmp_path)  # a checkpoint was kept (asserted there), the newest is finite
  assert step < 12 and not (tmp_path / "final_metrics.json").exists()
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state["params"]))


# Eval scores by step for the best-eval test: real evals of a few tiny steps mostly rise, so the best would be the
# last and a resume that forgot it would go unnoticed. Here the EMA best (step 2) precedes the preemption at
# step 4, the raw best is at step 4 itself and step 6 ties it (the first counts), the final (step 8) is neither.
SCRIPTED = {2: dict(top1=0.3, ema_top1=0.9), 4: dict(top1=0.8, ema_top1=0.5), 6: dict(top1=0.8, ema_top1=0.4),
            8: dict(top1=0.5, ema_top1=0.2)}


class _Scores:
  def __init__(self, step):
    self.scores = dict(SCRIPTED[step], top5=1.0, ema_top5=1.0, loss=float(step))

  def compute(self):
    return self.scores


class _PreemptAt:
  """PreemptionFlag as SIGTERM before step `step` would set it."""

  def __init__(self, step):
    self.step = step

  def reached(self, step):
    return step == self.step

  def restore(self):
    pass


def test_best_eval_and_checkpoint_survive_preemption_and_resume(tmp_path, cli, monkeypatch):
  """An uninterrupted run and one preempted at step 4 (an eval step) and resumed report the same best raw and
  EMA evals (their steps and metrics, from metrics.jsonl's records) and keep the same checkpoints: the newest
  keep_checkpoints=2 and the best by ema_top1. The reference run's programs: compiled once, or read from the
  compilation cache after the reference run."""
  from tinynet_jax.checkpoints.training import restore_best
  from tinynet_jax.inference.loading import load_checkpoint
  from tinynet_jax.train import engine, loop
  monkeypatch.setattr(engine.Engine, "evaluate", lambda self, state, *_: _Scores(int(state.step)))
  args = [*REFERENCE, "--config.eval_every_steps=2", "--config.checkpoint_every_steps=1000",
          "--config.keep_checkpoints=2"]
  code, _, err = cli("tinynet_jax.main", *flags(tmp_path / "straight", *args))
  assert code == 0, err
  with monkeypatch.context() as preempted:
    preempted.setattr(loop, "PreemptionFlag", lambda: _PreemptAt(4))
    code, _, err = cli("tinynet_jax.main", *flags(tmp_path / "resumed", *args))
    assert code == 0 and not (tmp_path / "resumed" / "final_metrics.json").exists(), err
  assert checkpoint_steps(tmp_path / "resumed") == [2, 4]
  code, _, err = cli("tinynet_jax.main", *flags(tmp_path / "resumed", *args))
  assert code == 0, err

  straight = json.loads((tmp_path / "straight" / "final_metrics.json").read_text())
  resumed = json.loads((tmp_path / "resumed" / "final_metrics.json").read_text())
  assert straight["best"] == resumed["best"] == {
      "raw": {"step": 4, "top1": 0.8, "top5": 1.0, "loss": 4.0}, "ema": {"step": 2, "top1": 0.9, "top5": 1.0}}
  assert straight["best_checkpoint"] == resumed["best_checkpoint"] == {"metric": "ema_top1", "step": 2, "value": 0.9}
  assert (straight["top1"], straight["ema_top1"]) == (resumed["top1"], resumed["ema_top1"]) == (0.5, 0.2)
  for run in ("straight", "resumed"):
    lines = [json.loads(l) for l in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    evals = [l for l in lines if l["split"] == "eval"]
    assert [l["step"] for l in evals] == [2, 4, 6, 8]  # the preempted step's eval too
    assert_best_matches_the_eval_records(json.loads((tmp_path / run / "final_metrics.json").read_text()), evals)
    assert checkpoint_steps(tmp_path / run) == [2, 6, 8]  # the best, then the newest two
    state, step = restore_best(tmp_path / run)
    assert step == int(state["step"]) == 2
  loaded = load_checkpoint(tmp_path / "resumed", best=True, ema=True)
  assert loaded.source == "training workdir, best step 2 by ema_top1 (EMA)"


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


def use_one_device(monkeypatch):
  """Cuts the trainer's mesh to this process's first device (a 1-device run without a 1-device process);
  returns the list of meshes made, to show the trainer used it."""
  import jax
  made = []

  def make_mesh():
    made.append(jax.make_mesh((1,), (parallel.AXIS,), axis_types=(jax.sharding.AxisType.Explicit,),
                              devices=jax.devices()[:1]))
    return made[-1]

  monkeypatch.setattr(parallel, "make_mesh", make_mesh)
  return made


def test_device_resident_data_resumes_exactly_and_ignores_the_device_count(tmp_path, cli, monkeypatch):
  """data_on_device: 8 devices straight to step 6 == 1 device to step 3, then resumed to step 6."""
  schedule = ["--config.data_on_device=True", "--config.checkpoint_every_steps=3", "--config.sync_bn=True",
              "--config.drop_rate=0.0", "--config.resident_size=40", "--config.dataset_options.num_train=64",
              "--config.dataset_options.num_eval=16", "--config.dataset_options.num_classes=10"]
  code, _, err = cli("tinynet_jax.main", *flags(tmp_path / "eight", *schedule, "--config.total_steps=6"))
  assert code == 0, err
  made = use_one_device(monkeypatch)
  for steps in (3, 6):
    code, _, err = cli("tinynet_jax.main", *flags(tmp_path / "one", *schedule, f"--config.total_steps={steps}"))
    assert code == 0, err
  assert len(made) == 2 and all(mesh.size == 1 for mesh in made)  # both runs trained on 1 device
  assert checkpoint_steps(tmp_path / "one") == [3, 4, 6]  # 4: an eval step (once per 4-step epoch)
  _, eight = final_params(tmp_path / "eight")
  _, resumed = final_params(tmp_path / "one")
  import jax
  for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(resumed)):  # float summation order differs: 8 vs 1
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  final = json.loads((tmp_path / "one" / "final_metrics.json").read_text())
  assert final["steps"] == 6 and 0 <= final["top1"] <= 1


def test_the_quickstart_model_learns_digits_to_90_percent(tmp_path):
  """Real learning on real data: the README's quickstart run (TinyNet-E at 30 px on the embedded digits, 359
  held-out images), cut from 264 to 200 steps."""
  args = ["-m", "tinynet_jax.main", "--config=configs/train.py:model=tinynet_e,dataset=digits,runlocal",
          f"--workdir={tmp_path}", "--config.total_steps=200",
          "--config.log_every_steps=50", "--config.checkpoint_every_steps=200"]
  code, _, err = finish(start(args, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}))
  assert code == 0, err
  final = json.loads((tmp_path / "final_metrics.json").read_text())
  assert final["resolution"] == 30 and final["dataset"] == "digits" and final["model"] == "tinynet_e"
  assert final["top1"] >= 0.90 and final["ema_top1"] >= 0.90, final


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
