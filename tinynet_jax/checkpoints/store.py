"""The project's model checkpoint: a directory with the spec as JSON and the variables as an Orbax checkpoint.

    DIR/tinynet.json   {"format": "tinynet_jax.model", "version": 1, "spec": {...}, "num_classes": N, ...}
    DIR/variables/     Orbax StandardCheckpointer: {'params': ..., 'batch_stats': ...}

A checkpoint is written into a temporary sibling directory and renamed into place, so a crash never leaves a
half-written DIR. Loading needs neither torch nor the code that wrote it: the spec rebuilds the model.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from tinynet_jax.errors import CheckpointError, SpecError
from tinynet_jax.models import EfficientNet, create_model
from tinynet_jax.arch import ModelSpec

FORMAT = "tinynet_jax.model"
VERSION = 1
METADATA_FILE = "tinynet.json"
VARIABLES_DIR = "variables"


def abstract_variables(model: EfficientNet) -> dict[str, Any]:
  """Shapes and dtypes of `model`'s variables, without allocating them."""
  size = model.spec.resolution
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))


def _replace_dir(tmp: Path, final: Path, overwrite: bool) -> None:
  if final.exists():
    if not overwrite:
      raise CheckpointError(f"{final} already exists (pass overwrite to replace it)")
    old = final.with_name(final.name + f".old-{os.getpid()}")
    final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old)
  else:
    tmp.rename(final)


def save(directory: str | os.PathLike, spec: ModelSpec, variables: Mapping[str, Any], *,
         num_classes: int, metadata: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
  """Writes a model checkpoint atomically; `metadata` (JSON-able) records provenance."""
  final = Path(directory).absolute()
  if final.exists() and not overwrite:
    raise CheckpointError(f"{final} already exists (pass overwrite to replace it)")
  final.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
  umask = os.umask(0)
  os.umask(umask)
  tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result should look like any new directory
  try:
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp / VARIABLES_DIR, dict(variables))
    checkpointer.wait_until_finished()
    info = {"format": FORMAT, "version": VERSION, "num_classes": num_classes, "spec": spec.to_dict(),
            "metadata": dict(metadata or {})}
    (tmp / METADATA_FILE).write_text(json.dumps(info, indent=1) + "\n")
    _replace_dir(tmp, final, overwrite)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return final


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
  path = Path(directory)
  if not path.is_dir():
    raise CheckpointError(f"no checkpoint directory at {path}")
  meta_path = path / METADATA_FILE
  if not meta_path.is_file():
    raise CheckpointError(f"{path} is not a tinynet_jax checkpoint (no {METADATA_FILE})")
  try:
    info = json.loads(meta_path.read_text())
  except (OSError, ValueError) as e:
    raise CheckpointError(f"cannot read {meta_path}: {e}") from None
  if not isinstance(info, dict) or info.get("format") != FORMAT:
    raise CheckpointError(f"{meta_path} is not a {FORMAT} file")
  if info.get("version") != VERSION:
    raise CheckpointError(f"{meta_path} has version {info.get('version')}, this code reads {VERSION}")
  return info


def load(directory: str | os.PathLike, **model_kwargs) -> tuple[EfficientNet, dict[str, Any], ModelSpec]:
  """Loads a checkpoint written by this project: ``model, variables, spec = load(dir)``.

  `model_kwargs` (e.g. ``dtype=jnp.bfloat16``) configure the returned module; they do not change the weights.
  """
  path = Path(directory).absolute()
  info = read_metadata(path)
  try:
    spec = ModelSpec.from_dict(info["spec"])
  except (KeyError, SpecError) as e:
    raise CheckpointError(f"{path / METADATA_FILE}: bad spec: {e}") from None
  model = create_model(spec, info.get("num_classes", 1000), **model_kwargs)
  target = abstract_variables(model)
  try:
    variables = ocp.StandardCheckpointer().restore(path / VARIABLES_DIR, target)
  except Exception as e:  # orbax raises assorted types for missing/corrupt/mismatched items
    raise CheckpointError(f"cannot restore {path / VARIABLES_DIR}: {type(e).__name__}: {e}") from None
  return model, variables, spec
