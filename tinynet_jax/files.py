"""Crash-safe file writes: a reader never sees a half-written result, report or log line."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
  """Writes to a temporary file beside `path`, then renames it into place."""
  atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Writes to a temporary file beside `path`, then renames it into place."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
  atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=_jsonable) + "\n")


def append_json_line(path: str | os.PathLike, record: dict) -> None:
  """Appends one JSON line with a single write to an O_APPEND file (whole lines even if the process dies)."""
  line = (json.dumps(record, sort_keys=True, default=_jsonable) + "\n").encode()
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    os.write(fd, line)
  finally:
    os.close(fd)


def _jsonable(value):
  if hasattr(value, "item"):  # numpy / jax scalars
    return value.item()
  if hasattr(value, "tolist"):
    return value.tolist()
  raise TypeError(f"cannot write {type(value).__name__} as JSON")
