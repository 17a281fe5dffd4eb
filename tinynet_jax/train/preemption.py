"""SIGTERM (preemption) as a flag: the loop saves a checkpoint at the next step boundary and exits 0."""
from __future__ import annotations

import signal
import threading

import jax
from jax.experimental import multihost_utils


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
      return multihost_utils.reached_preemption_sync_point(step)
    return self._event.is_set()

  def restore(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
