"""Training-state checkpoints: an Orbax `CheckpointManager` in ``WORKDIR/checkpoints``, and their one reader.

* Periodic, eval-step and final saves, written asynchronously (Orbax finalises each step atomically, so a crash
  mid-save leaves only an ignored temporary directory). A save at an eval step carries that eval's metrics.
* Retention (Orbax's preservation policies): the newest `keep` steps, for resume, and the best step by
  `best_metric` among the saves with metrics, never deleted. Ties go to the earlier step, as in the loop's
  `tinynet_jax.train.best`, so `restore_best` gives the step ``final_metrics.json`` names.
* `restore_latest` reads the newest step; if it cannot be read (corrupt or partial files), the previous one is
  tried, with a warning, and so on. `restore_best` reads the best step (no fallback: another step is not the
  best). Training resume, loading a training workdir (`tinynet_jax.load`, predict, CAM, checkpoint evaluation)
  and the tests all read through them, so none of them knows Orbax's layout.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from tinynet_jax.errors import CheckpointError

CHECKPOINT_DIR = "checkpoints"
DEFAULT_BEST_METRIC = "ema_top1"


class _QuietMissingMetrics(logging.Filter):
  """Orbax warns at every save without metrics once a best_fn is set; ours are the periodic saves between
  evals, by design, and the warning would fill the sweep's WARNING-level output."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "did not provide metrics" not in record.getMessage()


_QUIET = _QuietMissingMetrics()


def _one_copy_per_array_on_cpu() -> None:
  """On a CPU backend every replica of an array lives in the same host memory, so save one copy: Orbax's
  replica-parallel saving (its default off GPU) slices each replicated array per device with eager ops compiled
  per shape, and the first save of 200 differently shaped leaves on 8 (fake) CPU devices took 8.9 s instead of
  0.35 s. This replaces Orbax's handler for jax.Array in its global registry, once, and only on CPU."""
  if jax.default_backend() != "cpu":
    return
  if getattr(ocp.type_handlers.get_type_handler(jax.Array), "_use_replica_parallel", False):
    ocp.type_handlers.register_type_handler(jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False),
                                            override=True)


def _ranking(metric: str):
  """The best-checkpoint order: higher `metric`, then the earlier step (so a later tie does not replace it)."""
  return lambda metrics: (float(metrics[metric]), -int(metrics["step"]))


class Checkpointer:
  """Saves and restores the train state of one workdir (`create=False`: read only, makes no directory)."""

  def __init__(self, workdir: str | Path, keep: int = 3, async_save: bool = True, create: bool = True,
               best_metric: str = DEFAULT_BEST_METRIC):
    ranking = _ranking(best_metric)
    # best_fn makes Orbax store each save's metrics (and gives best_step); the preservation policy is what
    # deletes: the newest `keep` OR the one best. (best_fn with max_to_keep alone would keep the `keep` best
    # and could delete the newest step, which resume needs.)
    preserve = checkpoint_managers.AnyPreservationPolicy([
        checkpoint_managers.LatestN(n=keep),
        checkpoint_managers.BestN(get_metric_fn=ranking, reverse=False, n=1,
                                  keep_checkpoints_without_metrics=False)])
    options = ocp.CheckpointManagerOptions(create=create, enable_async_checkpointing=async_save, best_fn=ranking,
                                           best_mode="max", preservation_policy=preserve)
    logging.getLogger("absl").addFilter(_QUIET)  # a filter added twice is kept once
    _one_copy_per_array_on_cpu()
    self.best_metric = best_metric
    self.directory = Path(workdir).absolute() / CHECKPOINT_DIR
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_handlers=ocp.StandardCheckpointHandler())

  def save(self, step: int, state: Any, *, metrics: dict[str, float] | None = None, wait: bool = False) -> None:
    """Saves `state` at `step` (once: a step already saved is left as it is). `metrics` (an eval's) make the
    step a candidate for the best checkpoint."""
    if step not in self.manager.all_steps():
      self.manager.save(step, args=ocp.args.StandardSave(state), force=True,
                        metrics=None if metrics is None else {**metrics, "step": int(step)})
    if wait:
      self.manager.wait_until_finished()

  def _restore(self, step: int, abstract_state: Any, sharding: Any) -> Any:
    target = abstract_state
    if target is None:
      place = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=place),
                            self.manager.item_metadata(step).tree)
    return self.manager.restore(step, args=ocp.args.StandardRestore(target))

  def restore_latest(self, abstract_state: Any = None, *, sharding: Any = None) -> tuple[Any, int] | None:
    """The newest readable checkpoint as (state, step), or None when there is none.

    `abstract_state` gives the tree to restore into (shapes, dtypes, shardings); None restores the saved tree
    as nested dicts, every array placed with `sharding` (default: this process's first device).
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state = self._restore(step, abstract_state, sharding)
      except Exception as e:  # corrupt or partial (Orbax raises assorted types): fall back to the one before
        logging.warning("checkpoint at step %d is unreadable (%s: %s); trying the previous one", step,
                        type(e).__name__, e)
        continue
      return state, step
    return None

  def best_step(self) -> int | None:
    """The step of the best checkpoint by `best_metric` (saves with metrics only); None when there is none."""
    return self.manager.best_step()

  def best_metrics(self) -> dict[str, float] | None:
    """The eval metrics saved with the best checkpoint (with its ``step``); None when there is none."""
    step = self.best_step()
    return None if step is None else dict(self.manager.metadata(step).metrics)

  def restore_best(self, abstract_state: Any = None, *, sharding: Any = None) -> tuple[Any, int] | None:
    """The best checkpoint by `best_metric` as (state, step); None when no save carries metrics (a workdir
    that never evaluated, or written before best checkpoints were kept). Arguments as `restore_latest`."""
    step = self.best_step()
    if step is None:
      return None
    try:
      return self._restore(step, abstract_state, sharding), step
    except Exception as e:  # see restore_latest
      raise CheckpointError(f"the best checkpoint (step {step}) in {self.directory} is unreadable "
                            f"({type(e).__name__}: {' '.join(str(e).split())})") from None

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _read(workdir: str | Path, best: bool, best_metric: str, abstract_state: Any,
          sharding: Any) -> tuple[Any, int] | None:
  if not (Path(workdir) / CHECKPOINT_DIR).is_dir():
    return None
  checkpointer = Checkpointer(workdir, create=False, best_metric=best_metric)
  try:
    read = checkpointer.restore_best if best else checkpointer.restore_latest
    return read(abstract_state, sharding=sharding)
  finally:
    checkpointer.close()


def restore_latest(workdir: str | Path, abstract_state: Any = None, *,
                   sharding: Any = None) -> tuple[Any, int] | None:
  """The newest readable train state of a training workdir as (state, step); None when it has none.

  Reads only; see `Checkpointer.restore_latest` for `abstract_state` and `sharding`.
  """
  return _read(workdir, False, DEFAULT_BEST_METRIC, abstract_state, sharding)


def restore_best(workdir: str | Path, abstract_state: Any = None, *, best_metric: str = DEFAULT_BEST_METRIC,
                 sharding: Any = None) -> tuple[Any, int] | None:
  """The best train state of a training workdir by `best_metric` (its config's) as (state, step); None when it
  has none. Reads only; see `Checkpointer.restore_best`."""
  return _read(workdir, True, best_metric, abstract_state, sharding)
