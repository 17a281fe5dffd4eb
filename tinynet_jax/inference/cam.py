"""Class activation maps (the paper's Fig. 4): which pixels make a TinyNet say what it says.

CAM (Zhou et al. 2016): the head's pre-pool activations weighted by the classifier row of the class,
``sum_c W[c, k] * F[h, w, c]``; exact for these networks, whose classifier reads the global average of F.
Grad-CAM (Selvaraju et al. 2017): weights = spatial mean of d logit_k / d F, then ReLU, where the logit is the
model's own `classify` (pool, dropout, classifier) applied to F. Maps are resized (bilinear) to the input and
scaled to [0, 1]. ``python -m tinynet_jax.cam`` draws them over an image.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tinynet_jax.data.preprocessing import MEAN, STD
from tinynet_jax.files import atomic_write_bytes
from tinynet_jax.inference.loading import preprocess

METHODS = ("cam", "gradcam")


def _normalise(maps):
  low = maps.min(axis=(1, 2), keepdims=True)
  span = maps.max(axis=(1, 2), keepdims=True) - low
  return jnp.where(span > 0, (maps - low) / jnp.where(span > 0, span, 1.0), 0.0)


def activation_maps(model, variables, images, class_index=None, method: str = "cam"):
  """(maps (N, H, W) in [0, 1] at the input size, classes (N,)) for float32 images (N, H, W, 3).

  `model` returns its 'head' activations with ``return_features=True`` and has a `classify(head)` method (as
  `EfficientNet`). `class_index`: None = each image's predicted class; an int or a sequence = those classes.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
  images = jnp.asarray(images, jnp.float32)
  logits, features = model.apply(variables, images, train=False, return_features=True)
  head = features["head"].astype(jnp.float32)  # (N, h, w, C)
  if class_index is None:
    classes = jnp.argmax(logits, axis=-1)
  else:
    classes = jnp.broadcast_to(jnp.asarray(class_index, jnp.int32), (images.shape[0],))
  if method == "cam":
    weights = variables["params"]["classifier"]["kernel"].T[classes]  # (N, C)
    maps = jnp.einsum("nhwc,nc->nhw", head, weights)
  else:
    def class_logit(f):
      out = model.apply(variables, f, method="classify")
      return jnp.take_along_axis(out, classes[:, None], axis=1).sum()
    grads = jax.grad(class_logit)(head)
    maps = jax.nn.relu(jnp.einsum("nhwc,nc->nhw", head, grads.mean(axis=(1, 2))))
  size = images.shape[1:3]
  maps = jax.image.resize(maps, (maps.shape[0], *size), method="bilinear")
  return _normalise(maps), classes


def overlay(image_uint8, cam, alpha: float = 0.45):
  """An RGB picture in [0, 1]: the image blended with the 'jet' colour map of `cam`."""
  import matplotlib  # plotting only when drawing
  heat = matplotlib.colormaps["jet"](np.asarray(cam))[..., :3]
  return np.clip((1 - alpha) * image_uint8 / 255.0 + alpha * heat, 0, 1)


def display_image(path: str, resolution: int):
  """(the model's input (1, res, res, 3), the same centre crop in [0, 255] for display)."""
  pixels = preprocess([path], resolution)
  return pixels, np.clip((pixels[0] * np.asarray(STD) + np.asarray(MEAN)) * 255.0, 0, 255)


def write_figure(panels: Sequence[dict[str, Any]], out: str) -> None:
  """One row of overlays, each titled; written atomically (PNG, or any matplotlib format by suffix)."""
  import matplotlib  # plotting only when drawing
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4), squeeze=False)
  for axis, panel in zip(axes[0], panels):
    axis.imshow(panel["picture"])
    axis.set_title(panel["title"], fontsize=9)
    axis.axis("off")
  figure.tight_layout()
  buffer = io.BytesIO()
  suffix = Path(out).suffix.lstrip(".").lower() or "png"
  figure.savefig(buffer, format=suffix, dpi=120)
  plt.close(figure)
  atomic_write_bytes(out, buffer.getvalue())
