"""The training engine's own runs, end to end: SIGTERM at a step boundary, a non-finite loss, the best eval and
checkpoint across a resume, device-resident data and the device count, real learning on digits.

Split from test_train_loop.py (which keeps the reference run and what compares against it) so that pytest-xdist's
--dist loadfile can give the two files to different workers. Helpers and conventions: test_train_loop.py.
"""
import json
import signal
import time

import numpy as np

from conftest import finish, start_python as start
from test_train_loop import REFERENCE, assert_best_matches_the_eval_records, checkpoint_steps, final_params, flags, main_args
from tinynet_jax.train import parallel

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
  held-out images), cut from 264 to 150 steps (96.7% raw and EMA top-1 on this CPU)."""
  args = ["-m", "tinynet_jax.main", "--config=configs/train.py:model=tinynet_e,dataset=digits,runlocal",
          f"--workdir={tmp_path}", "--config.total_steps=150",
          "--config.log_every_steps=50", "--config.checkpoint_every_steps=150"]
  code, _, err = finish(start(args, env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}))
  assert code == 0, err
  final = json.loads((tmp_path / "final_metrics.json").read_text())
  assert final["resolution"] == 30 and final["dataset"] == "digits" and final["model"] == "tinynet_e"
  assert final["top1"] >= 0.90 and final["ema_top1"] >= 0.90, final
