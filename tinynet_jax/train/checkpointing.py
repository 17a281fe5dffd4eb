"""Training checkpoints: Orbax `CheckpointManager` in ``workdir/checkpoints``, resume, preemption.

* Periodic and final saves, keep the newest K, written asynchronously (Orbax finalises each step atomically,
  so a crash mid-save leaves only an ignored temporary directory).
* Resume restores the newest checkpoint; if it cannot be read (corrupt files), the previous one is tried,
  with a warning, and so on.
* SIGTERM (preemption) sets a flag; the loop saves at the next step boundary and exits 0.
"""
from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
  def __init__(self, workdir: str | Path, keep: int = 3, async_save: bool = True):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self.directory = Path(workdir).absolute() / CHECKPOINT_DIR
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, state: Any, *, wait: bool = False) -> None:
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    if wait:
      self.manager.wait_until_finished()

  def restore_latest(self, abstract_state: Any) -> tuple[Any, int] | None:
    """The newest readable checkpoint as (state, step), or None when there is none."""
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state = self.manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
      except Exception as e:  # corrupt or partial: fall back to the one before
        logging.warning("checkpoint at step %d is unreadable (%s: %s); trying the previous one", step,
                        type(e).__name__, e)
        continue
      return state, step
    return None

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


class PreemptionFlag:
  """SIGTERM as a flag the loop polls at step boundaries.

  Multi-process runs use JAX's preemption sync point instead (the coordination service catches the signal
  and every process agrees on the step to stop at); a process-local flag could make them diverge.
  """

  def __init__(self):
    self._event = threading.Event()
    self._previous = None
    self._multiprocess = jax.process_count() > 1
    if not self._multiprocess and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, lambda *_: self._event.set())

  def reached(self, step: int) -> bool:
    if self._multiprocess:
      from jax.experimental import multihost_utils
      return multihost_utils.reached_preemption_sync_point(step)
    return self._event.is_set()

  def restore(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
