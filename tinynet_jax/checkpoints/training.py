"""Training-state checkpoints: an Orbax `CheckpointManager` in ``WORKDIR/checkpoints``, and their one reader.

* Periodic and final saves, keep the newest K, written asynchronously (Orbax finalises each step atomically,
  so a crash mid-save leaves only an ignored temporary directory).
* `restore_latest` reads the newest step; if it cannot be read (corrupt or partial files), the previous one is
  tried, with a warning, and so on. Training resume, loading a training workdir (`tinynet_jax.load`, predict,
  CAM, checkpoint evaluation) and the tests all read through it, so none of them knows Orbax's layout.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
  """Saves and restores the train state of one workdir (`create=False`: read only, makes no directory)."""

  def __init__(self, workdir: str | Path, keep: int = 3, async_save: bool = True, create: bool = True):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=async_save)
    self.directory = Path(workdir).absolute() / CHECKPOINT_DIR
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_handlers=ocp.StandardCheckpointHandler())

  def save(self, step: int, state: Any, *, wait: bool = False) -> None:
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    if wait:
      self.manager.wait_until_finished()

  def restore_latest(self, abstract_state: Any = None, *, sharding: Any = None) -> tuple[Any, int] | None:
    """The newest readable checkpoint as (state, step), or None when there is none.

    `abstract_state` gives the tree to restore into (shapes, dtypes, shardings); None restores the saved tree
    as nested dicts, every array placed with `sharding` (default: this process's first device).
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        target = abstract_state
        if target is None:
          place = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
          target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=place),
                                self.manager.item_metadata(step).tree)
        state = self.manager.restore(step, args=ocp.args.StandardRestore(target))
      except Exception as e:  # corrupt or partial (Orbax raises assorted types): fall back to the one before
        logging.warning("checkpoint at step %d is unreadable (%s: %s); trying the previous one", step,
                        type(e).__name__, e)
        continue
      return state, step
    return None

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def restore_latest(workdir: str | Path, abstract_state: Any = None, *,
                   sharding: Any = None) -> tuple[Any, int] | None:
  """The newest readable train state of a training workdir as (state, step); None when it has none.

  Reads only; see `Checkpointer.restore_latest` for `abstract_state` and `sharding`.
  """
  if not (Path(workdir) / CHECKPOINT_DIR).is_dir():
    return None
  checkpointer = Checkpointer(workdir, create=False)
  try:
    return checkpointer.restore_latest(abstract_state, sharding=sharding)
  finally:
    checkpointer.close()
