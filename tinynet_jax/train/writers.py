"""Metrics out: one JSON line per log step (``metrics.jsonl``, the primary record the search reads), plus
TensorBoard through clu's metric writers when TensorFlow is installed (clu.metric_writers imports it)."""
from __future__ import annotations

import logging
from pathlib import Path

import jax

from tinynet_jax.files import append_json_line

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  def __init__(self, workdir: str | Path, tensorboard: bool = True):
    self.is_chief = jax.process_index() == 0
    self.path = Path(workdir) / METRICS_FILE
    self._tb = None
    if tensorboard and self.is_chief:
      try:
        from clu import metric_writers
        self._tb = metric_writers.create_default_writer(str(workdir), asynchronous=True)
      except ImportError:  # no TensorFlow/tensorboard on this machine (e.g. a bare GPU box)
        logging.info("TensorBoard summaries off: clu.metric_writers needs tensorflow and tensorboard")

  def write(self, step: int, split: str, scalars: dict[str, float]) -> None:
    if not self.is_chief:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    append_json_line(self.path, {"step": int(step), "split": split, **scalars})
    if self._tb is not None:
      self._tb.write_scalars(step, {f"{split}/{k}": v for k, v in scalars.items()})
    logging.info("step %d %s: %s", step, split, ", ".join(f"{k}={v:.5g}" for k, v in scalars.items()))

  def close(self) -> None:
    if self._tb is not None:
      self._tb.flush()
      self._tb.close()
