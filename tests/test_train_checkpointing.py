"""Training checkpoints: resume from the newest readable step, fall back past a corrupt one with a warning."""
import logging

import jax
import jax.numpy as jnp
import numpy as np

from tinynet_jax.checkpoints.training import Checkpointer, restore_latest


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
