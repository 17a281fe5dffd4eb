"""``results.jsonl``: one JSON line per finished sweep model, appended with a single O_APPEND write
(`tinynet_jax.files.append_json_line`); reading it back, and repairing a torn last line.

Replicates (``sweep.replicates`` > 0: other seeds of the best models of each level, to measure the seed noise)
are rows like any other, with their own unique ``id`` and two more fields; the analysis merges them into their
model (mean accuracy) and pools their spread into the seed σ (`tinynet_jax.search.analysis.seed_noise`):

    seed          int, the training seed of this run (optional on original rows; the config's seed)
    replicate_of  the id of the model row this run repeats (absent or null on original rows); the same network
                  (r, d, w, rules, macs, kind, level), only the seed differs

A replicate whose model has no row, or whose MACs differ from it, is an error.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynet_jax.errors import SearchError

RESULTS = "results.jsonl"
REPLICATE_FIELDS = ("seed", "replicate_of")  # optional; see the module docstring
REQUIRED = ("id", "kind", "r", "d", "w", "rules", "macs", "c", "b0_macs", "base_resolution", "flops_classes",
            "top1", "ema_top1")


def results_path(path: str | os.PathLike) -> Path:
  """A sweep directory or a results file -> the results file."""
  path = Path(path)
  return path / RESULTS if path.is_dir() else path


def read_results(path: str | os.PathLike, *, allow_torn_tail: bool = False) -> list[dict[str, Any]]:
  """The rows of a results file, one per model id (the first, should a model ever appear twice).

  A process killed mid-write can only leave a last line without its newline; with `allow_torn_tail` (the
  runner, which then rewrites it) that line is ignored, otherwise it is an error like any other bad line.
  """
  path = Path(path)
  try:
    text = path.read_text()
  except FileNotFoundError:
    if allow_torn_tail:
      return []
    raise SearchError(f"no results file at {path}") from None
  except OSError as e:
    raise SearchError(f"cannot read {path}: {e.strerror or e}") from None
  lines = text.split("\n")
  if allow_torn_tail:
    lines = lines[:-1]  # the part after the last newline: empty, or a torn write
  rows, seen = [], set()
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      raise SearchError(f"{path}:{number} is not a JSON line; the results file is corrupt") from None
    missing = [k for k in REQUIRED if not isinstance(row, dict) or k not in row]
    if missing:
      raise SearchError(f"{path}:{number} is not a sweep result (missing {', '.join(missing)})")
    if row["id"] not in seen:
      seen.add(row["id"])
      rows.append(row)
  if not rows and not allow_torn_tail:
    raise SearchError(f"{path} holds no results")
  return rows


def drop_torn_tail(path: Path) -> None:
  """Cuts a last line that lost its newline (a killed write), so the next append starts on a line of its own."""
  if not path.exists():
    return
  data = path.read_bytes()
  if data and not data.endswith(b"\n"):
    with open(path, "r+b") as f:
      f.truncate(data.rfind(b"\n") + 1)


def column(rows: Sequence[Mapping[str, Any]], key: str, figure: str) -> np.ndarray:
  """One finite float per row, or a SearchError naming the offending row (results files can hold anything)."""
  values = []
  for row in rows:
    value = row.get(key)
    if not isinstance(value, (int, float, np.number)) or isinstance(value, bool) or not math.isfinite(value):
      raise SearchError(f"{figure}: model {row.get('id', '?')!r} has no finite {key!r} (got {value!r})")
    values.append(float(value))
  return np.asarray(values, np.float64)
