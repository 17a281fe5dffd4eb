"""A timm / official PyTorch state dict -> a tinynet_jax model checkpoint, strictly (see `timm_port`)."""
from __future__ import annotations

import os

from tinynet_jax.checkpoints.store import abstract_variables, save
from tinynet_jax.checkpoints.timm_port import import_state_dict, read_state_dict
from tinynet_jax.errors import CheckpointError
from tinynet_jax.models import create_model


def convert(checkpoint_path: str, spec, out: str, *, num_classes: int | None = None, use_ema: bool = False,
            overwrite: bool = False):
  """Reads, checks and writes; returns the output path. Nothing is written unless every check passes."""
  if os.path.exists(out) and not overwrite:
    raise CheckpointError(f"{out} already exists (use --overwrite to replace it)")
  state_dict = read_state_dict(checkpoint_path, use_ema=use_ema)
  if num_classes is None:  # follow the checkpoint's classifier; 0 when it has none
    classifier = state_dict.get("classifier.weight")
    num_classes = int(classifier.shape[0]) if classifier is not None else 0
  model = create_model(spec, num_classes)
  variables = import_state_dict(state_dict, abstract_variables(model))
  metadata = {"source": os.path.abspath(checkpoint_path), "converter": "tinynet_jax.convert",
              "ema": use_ema}
  return save(out, spec, variables, num_classes=num_classes, metadata=metadata, overwrite=overwrite)
