"""Training checkpoints: resume from the newest readable step, fall back past a corrupt one with a warning; the
best checkpoint by an eval metric is kept beside the newest ones."""
import logging

import jax
import jax.numpy as jnp
import numpy as np

from tinynet_jax.checkpoints.training import Checkpointer, restore_best, restore_latest


def _state(value):
  return {"params": {"w": jnp.full((3, 2), value, jnp.float32)}, "step": jnp.asarray(int(value), jnp.int32)}


def test_restore_latest_and_fallback_past_a_corrupt_checkpoint(tmp_path, caplog):
  checkpointer = Checkpointer(tmp_path, keep=3)
  for step in (1, 2):
    checkpointer.save(step, _state(float(step)))
  checkpointer.close()
  abstract = jax.eval_shape(lambda: _state(0.0))

  checkpointer = Checkpointer(tmp_path, keep=3)
  state, step = checkpointer.restore_latest(abstract)
  assert step == 2 and np.all(np.asarray(state["params"]["w"]) == 2.0)
  checkpointer.close()
  state, step = restore_latest(tmp_path)  # the saved tree itself, on one device: how inference reads
  assert step == 2 and np.all(np.asarray(state["params"]["w"]) == 2.0) and int(state["step"]) == 2

  # Truncate every file of the newest step: a half-written or damaged checkpoint.
  for path in (tmp_path / "checkpoints" / "2").rglob("*"):
    if path.is_file():
      path.write_bytes(b"")
  checkpointer = Checkpointer(tmp_path, keep=3)
  with caplog.at_level(logging.WARNING):
    state, step = checkpointer.restore_latest(abstract)
  checkpointer.close()
  assert step == 1 and np.all(np.asarray(state["params"]["w"]) == 1.0)
  assert any("step 2 is unreadable" in r.getMessage() for r in caplog.records)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    state, step = restore_latest(tmp_path)
  assert step == 1 and np.all(np.asarray(state["params"]["w"]) == 1.0)
  assert any("step 2 is unreadable" in r.getMessage() for r in caplog.records)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
  checkpointer = Checkpointer(tmp_path)
  assert checkpointer.restore_latest(jax.eval_shape(lambda: _state(0.0))) is None
  checkpointer.close()
  assert restore_latest(tmp_path / "elsewhere") is None
  assert not (tmp_path / "elsewhere").exists()  # reading creates nothing


def _on_disk(workdir):
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def test_the_best_checkpoint_survives_retention_beside_the_newest_k(tmp_path, caplog):
  """keep=2 over saves with eval metrics and without (periodic ones): the newest two (what resume needs) and the
  best by ema_top1 survive, a later tie does not replace the best, and a reopened checkpointer (a resumed run)
  goes on keeping it. Orbax's own best_fn + max_to_keep would keep the two best and delete the newest."""
  ema = {1: 0.2, 2: 0.7, 3: None, 4: 0.7, 5: 0.1, 6: None, 7: 0.3}  # best: step 2 (step 4 only ties it)
  top1 = {1: 0.1, 2: 0.2, 4: 0.3, 5: 0.4, 7: 0.9}

  def save(checkpointer, step):
    metrics = None if ema[step] is None else {"ema_top1": ema[step], "top1": top1[step]}
    checkpointer.save(step, _state(float(step)), metrics=metrics)

  checkpointer = Checkpointer(tmp_path, keep=2)
  with caplog.at_level(logging.WARNING):
    for step in (1, 2, 3, 4, 5):
      save(checkpointer, step)
  checkpointer.close()
  assert _on_disk(tmp_path) == [2, 4, 5]
  assert not [r for r in caplog.records if "metrics" in r.getMessage()]  # no Orbax warning per periodic save
  checkpointer = Checkpointer(tmp_path, keep=2)
  for step in (6, 7):
    save(checkpointer, step)
  checkpointer.close()
  assert _on_disk(tmp_path) == [2, 6, 7]

  abstract = jax.eval_shape(lambda: _state(0.0))
  checkpointer = Checkpointer(tmp_path, keep=2, create=False)
  assert checkpointer.best_step() == 2
  assert checkpointer.best_metrics() == {"ema_top1": 0.7, "top1": 0.2, "step": 2}
  state, step = checkpointer.restore_best(abstract)
  assert step == 2 and np.all(np.asarray(state["params"]["w"]) == 2.0)
  assert checkpointer.restore_latest(abstract)[1] == 7
  checkpointer.close()
  state, step = restore_best(tmp_path)
  assert step == 2 and int(state["step"]) == 2
  assert restore_best(tmp_path, best_metric="top1")[1] == 7  # the metric ranks the kept steps


def test_no_best_without_a_save_with_metrics(tmp_path):
  checkpointer = Checkpointer(tmp_path)
  checkpointer.save(1, _state(1.0), wait=True)
  assert checkpointer.best_step() is None and checkpointer.restore_best() is None
  checkpointer.close()
  assert restore_best(tmp_path / "elsewhere") is None


def test_cpu_saves_one_copy_of_a_replicated_array_and_restores_it(tmp_path):
  """On CPU, Orbax's replica-parallel saving is off (it slices every replicated leaf per device with eager ops,
  compiled per shape: ~9 s for the first save of a 200-leaf state on 8 fake devices); the round trip still holds."""
  import orbax.checkpoint as ocp
  from tinynet_jax.train import parallel
  mesh = parallel.make_mesh()
  state = parallel.replicate(mesh, {"w": np.arange(24, dtype=np.float32).reshape(4, 6), "step": np.int32(3)})
  checkpointer = Checkpointer(tmp_path)
  assert ocp.type_handlers.get_type_handler(jax.Array)._use_replica_parallel is False
  checkpointer.save(3, state, wait=True)
  restored, step = checkpointer.restore_latest(
      jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state))
  checkpointer.close()
  assert step == 3 and np.array_equal(np.asarray(restored["w"]), np.asarray(state["w"]))
  assert len(jax.devices()) == 8 and restored["w"].sharding.is_fully_replicated
