"""Class activation maps (the paper's Fig. 4): which pixels make a TinyNet say what it says.

    python -m tinynet_jax.cam --checkpoint DIR IMAGE --out cam.png [--class K] [--method cam|gradcam]
    python -m tinynet_jax.cam --checkpoint TINYNET --checkpoint SHRUNK_B0 IMAGE --out side_by_side.png

CAM (Zhou et al. 2016): the head's pre-pool activations weighted by the classifier row of the class,
``sum_c W[c, k] * F[h, w, c]``; exact for these networks, whose classifier reads the global average of F.
Grad-CAM (Selvaraju et al. 2017): weights = spatial mean of d logit_k / d F, then ReLU. Maps are resized
(bilinear) to the input and scaled to [0, 1].
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from tinynet_jax.tools.cli import ArgumentParser, run
from tinynet_jax.errors import DataError, TinynetError

PROG = "python -m tinynet_jax.cam"
METHODS = ("cam", "gradcam")


def _normalise(maps):
  import jax.numpy as jnp
  low = maps.min(axis=(1, 2), keepdims=True)
  span = maps.max(axis=(1, 2), keepdims=True) - low
  return jnp.where(span > 0, (maps - low) / jnp.where(span > 0, span, 1.0), 0.0)


def activation_maps(model, variables, images, class_index=None, method: str = "cam"):
  """(maps (N, H, W) in [0, 1] at the input size, classes (N,)) for float32 images (N, H, W, 3).

  `class_index`: None = each image's predicted class; an int or a sequence = those classes.
  """
  import jax
  import jax.numpy as jnp
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
      # The network after the head: global average pool and the classifier, as in the model.
      pooled = f.mean(axis=(1, 2))
      params = variables["params"]["classifier"]
      out = pooled @ params["kernel"] + params["bias"]
      return jnp.take_along_axis(out, classes[:, None], axis=1).sum()
    grads = jax.grad(class_logit)(head)
    maps = jax.nn.relu(jnp.einsum("nhwc,nc->nhw", head, grads.mean(axis=(1, 2))))
  size = images.shape[1:3]
  maps = jax.image.resize(maps, (maps.shape[0], *size), method="bilinear")
  return _normalise(maps), classes


def overlay(image_uint8, cam, alpha: float = 0.45):
  """An RGB uint8 picture: the image blended with the 'jet' colour map of `cam`."""
  import matplotlib
  import numpy as np
  heat = matplotlib.colormaps["jet"](np.asarray(cam))[..., :3]
  return np.clip((1 - alpha) * image_uint8 / 255.0 + alpha * heat, 0, 1)


def display_image(path: str, resolution: int):
  """The same centre crop the model sees, in [0, 255] for display."""
  import numpy as np
  from tinynet_jax.data.preprocessing import MEAN, STD
  from tinynet_jax.inference import preprocess
  pixels = preprocess([path], resolution)
  return pixels, np.clip((pixels[0] * np.asarray(STD) + np.asarray(MEAN)) * 255.0, 0, 255)


def write_figure(panels: Sequence[dict[str, Any]], out: str) -> None:
  """One row of overlays, each titled; written atomically (PNG, or any matplotlib format by suffix)."""
  import io
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from tinynet_jax.files import atomic_write_bytes
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


def main(argv: Sequence[str] | None = None) -> int:
  parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", action="append", required=True,
                      help="model checkpoint or training workdir; twice for a side-by-side comparison")
  parser.add_argument("image", help="an image file")
  parser.add_argument("--out", required=True, help="output picture (.png, .svg, .pdf)")
  parser.add_argument("--class", dest="class_index", type=int, help="explain this class (default: the top-1)")
  parser.add_argument("--method", choices=METHODS, default="cam")
  parser.add_argument("--ema", action="store_true", help="a training workdir's EMA weights")
  args = parser.parse_args(argv)
  if len(args.checkpoint) > 2:
    parser.error("give one --checkpoint, or two to compare")
  if not Path(args.image).is_file():
    raise DataError(f"cannot read image {args.image}: no such file")
  from tinynet_jax.inference import class_names, load_checkpoint
  panels = []
  for checkpoint in args.checkpoint:
    loaded = load_checkpoint(checkpoint, ema=args.ema)
    if not loaded.num_classes:
      raise TinynetError(f"{checkpoint} has no classifier: a CAM needs one")
    if args.class_index is not None and not 0 <= args.class_index < loaded.num_classes:
      raise TinynetError(f"--class {args.class_index} is out of range for {loaded.num_classes} classes")
    pixels, display = display_image(args.image, loaded.spec.resolution)
    maps, classes = activation_maps(loaded.model, loaded.variables, pixels, args.class_index, args.method)
    name = class_names(loaded.num_classes, loaded.dataset)[int(classes[0])]
    panels.append({"picture": overlay(display, maps[0]),
                   "title": f"{loaded.spec.label} ({loaded.spec.resolution} px)\n{args.method}: {name}"})
  write_figure(panels, args.out)
  print(f"wrote {args.out}")
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
