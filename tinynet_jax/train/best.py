"""A run's best evaluation, of the raw and of the EMA weights: what ``final_metrics.json`` reports beside the
final step (the official trainer reports its best EMA epoch), and how a resumed run recovers it.

The best of a set of weights is its highest top-1 over every eval of the run; a tie keeps the earlier step (as
`tinynet_jax.checkpoints.training` ranks the best checkpoint). A resumed run rebuilds it from the eval records of
``metrics.jsonl`` up to the step it resumes from, so it reports what the uninterrupted run would.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tinynet_jax.train.writers import METRICS_FILE

# Each set of weights' eval metrics (`train.steps.EvalMetrics`) under the names its "best" entry uses; the eval
# loss is of the raw weights only.
WEIGHTS = {"raw": {"top1": "top1", "top5": "top5", "loss": "loss"}, "ema": {"top1": "ema_top1", "top5": "ema_top5"}}


class BestEvals:
  """The best eval so far of each set of weights: {"raw": {"step", "top1", "top5", "loss"}, "ema": {...}}."""

  def __init__(self):
    self.best: dict[str, dict[str, Any]] = {}

  def update(self, step: int, metrics: dict[str, float]) -> None:
    for weights, names in WEIGHTS.items():
      entry = {"step": int(step), **{key: float(metrics[name]) for key, name in names.items() if name in metrics}}
      current = self.best.get(weights)
      if current is None or entry["top1"] > current["top1"]:
        self.best[weights] = entry

  def kept_checkpoint(self, metric: str, step: int | None) -> dict[str, float] | None:
    """{"step", `metric`} of the best checkpoint at `step` (`Checkpointer.best_step`), from these evals when
    this best by `metric` is that step (both rank alike), else None (ask the checkpoint's saved metrics)."""
    weights = next((w for w, names in WEIGHTS.items() if names["top1"] == metric), None)
    entry = self.best.get(weights)
    if step is None or entry is None or entry["step"] != step:
      return None
    return {"step": step, metric: entry["top1"]}

  def to_dict(self) -> dict[str, dict[str, Any]]:
    return {weights: dict(entry) for weights, entry in self.best.items()}

  @classmethod
  def from_records(cls, workdir: str | Path, up_to_step: int) -> "BestEvals":
    """The best of the eval records in ``workdir/metrics.jsonl`` at steps <= `up_to_step`, taken in step order
    (a killed run's later records, and the repeats its resumed run writes, do not count twice)."""
    best = cls()
    path = Path(workdir) / METRICS_FILE
    if up_to_step <= 0 or not path.is_file():
      return best
    evals = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        logging.warning("%s line %d is not JSON; skipped", path, number)
        continue
      if isinstance(record, dict) and record.get("split") == "eval" and record.get("step", 0) <= up_to_step:
        evals.setdefault(int(record["step"]), record)
    for step in sorted(evals):
      best.update(step, evals[step])
    return best
