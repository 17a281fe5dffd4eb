"""A timm / official PyTorch state dict or an official MindSpore .ckpt -> a tinynet_jax model checkpoint,
strictly (see `timm_port` and `mindspore_port`)."""
from __future__ import annotations

import os

from tinynet_jax.checkpoints.mindspore_port import mindspore_key, read_mindspore_state_dict
from tinynet_jax.checkpoints.store import abstract_variables, save
from tinynet_jax.checkpoints.timm_port import import_state_dict, read_state_dict, timm_key
from tinynet_jax.errors import CheckpointError
from tinynet_jax.models import create_model

SOURCES = ("timm", "mindspore")


def convert(checkpoint_path: str, spec, out: str, *, num_classes: int | None = None, use_ema: bool = False,
            overwrite: bool = False, source: str = "timm"):
  """Reads, checks and writes; returns the output path. Nothing is written unless every check passes.

  `source` is "timm" (a PyTorch/timm state dict, .pth or .safetensors) or "mindspore" (the official MindSpore
  trainer's .ckpt; its optimizer state and counters are dropped, see `mindspore_port`).
  """
  if source not in SOURCES:
    raise CheckpointError(f"unknown checkpoint source {source!r} (one of {', '.join(SOURCES)})")
  if os.path.exists(out) and not overwrite:
    raise CheckpointError(f"{out} already exists (use --overwrite to replace it)")
  metadata = {"source": os.path.abspath(checkpoint_path), "converter": "tinynet_jax.convert", "ema": use_ema,
              "format": source}
  if source == "mindspore":
    if use_ema:
      raise CheckpointError("the MindSpore trainer writes its EMA weights to their own files (ema-N.ckpt, "
                            "ema_best.ckpt, ema_last.ckpt): convert one of those, without --ema")
    state_dict, dropped = read_mindspore_state_dict(checkpoint_path)
    metadata["dropped_training_state"] = len(dropped)
    key = mindspore_key
  else:
    state_dict, key = read_state_dict(checkpoint_path, use_ema=use_ema), timm_key
  if num_classes is None:  # follow the checkpoint's classifier; 0 when it has none (same name in both sources)
    classifier = state_dict.get("classifier.weight")
    num_classes = int(classifier.shape[0]) if classifier is not None else 0
  model = create_model(spec, num_classes)
  variables = import_state_dict(state_dict, abstract_variables(model), key=key)
  return save(out, spec, variables, num_classes=num_classes, metadata=metadata, overwrite=overwrite)
