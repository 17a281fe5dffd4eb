"""Class activation maps (the paper's Fig. 4): which pixels make a TinyNet say what it says.

    python -m tinynet_jax.cam --checkpoint DIR IMAGE --out cam.png [--class K] [--method cam|gradcam]
    python -m tinynet_jax.cam --checkpoint TINYNET --checkpoint SHRUNK_B0 IMAGE --out side_by_side.png

The maps and drawing are `tinynet_jax.inference.cam`; this file parses arguments and reports errors.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from tinynet_jax.errors import DataError, TinynetError
from tinynet_jax.inference import class_names, load_checkpoint
from tinynet_jax.inference.cam import METHODS, activation_maps, display_image, overlay, write_figure
from tinynet_jax.tools.cli import ArgumentParser, run

PROG = "python -m tinynet_jax.cam"


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
  panels = []
  for checkpoint in args.checkpoint:
    loaded = load_checkpoint(checkpoint, ema=args.ema)
    if not loaded.num_classes:
      raise TinynetError(f"{checkpoint} has no classifier: a CAM needs one")
    if args.class_index is not None and not 0 <= args.class_index < loaded.num_classes:
      raise TinynetError(f"--class {args.class_index} is out of range for {loaded.num_classes} classes")
    pixels, display = display_image(args.image, loaded.spec.resolution)
    maps, classes = activation_maps(loaded.model, loaded.variables, pixels, args.class_index, args.method)
    name = class_names(loaded.num_classes, loaded.dataset, loaded.label_names)[int(classes[0])]
    panels.append({"picture": overlay(display, maps[0]),
                   "title": f"{loaded.spec.label} ({loaded.spec.resolution} px)\n{args.method}: {name}"})
  write_figure(panels, args.out)
  print(f"wrote {args.out}")
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
