"""Top-k classes of image files from any checkpoint this project reads."""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from tinynet_jax.errors import CheckpointError
from tinynet_jax.inference.loading import class_names, load_checkpoint, preprocess


def predict(checkpoint: str, images: Sequence[str], *, top: int = 5, ema: bool = False,
            best: bool = False) -> list[dict[str, Any]]:
  """The `top` classes of each image file with their probabilities, from any checkpoint (timm's eval transform at
  the model's resolution; class names as `class_names` gives them; `ema`, `best` as `load_checkpoint`)."""
  loaded = load_checkpoint(checkpoint, ema=ema, best=best)
  if not loaded.num_classes:
    raise CheckpointError(f"{checkpoint} has no classifier (num_classes 0): nothing to predict")
  pixels = preprocess(images, loaded.spec.resolution)
  logits = jax.jit(lambda v, x: loaded.model.apply(v, x, train=False))(loaded.variables, pixels)
  probabilities = np.asarray(jax.nn.softmax(logits, axis=-1))
  names = class_names(loaded.num_classes, loaded.dataset, loaded.label_names)
  results = []
  for path, p in zip(images, probabilities):
    order = np.argsort(-p, kind="stable")[:min(top, loaded.num_classes)]
    results.append({"image": str(path), "top": [{"class": int(k), "name": names[k], "probability": float(p[k])}
                                                for k in order]})
  return results
