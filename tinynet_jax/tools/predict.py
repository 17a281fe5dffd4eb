"""``python -m tinynet_jax.predict --checkpoint DIR IMAGE...``: the top-5 classes of each image, with probabilities.

DIR is a model checkpoint (e.g. converted from timm's released TinyNet weights with
``python -m tinynet_jax.convert``) or a training workdir (newest checkpoint; ``--best`` for its best checkpoint,
``--ema`` for the EMA weights).
Images go through timm's eval transform at the model's resolution; ImageNet class names come from TFDS's label
file (offline), with WordNet lemmas when timm is installed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from tinynet_jax.inference.predict import predict
from tinynet_jax.tools.cli import ArgumentParser, positive_int, run

PROG = "python -m tinynet_jax.predict"


def main(argv: Sequence[str] | None = None) -> int:
  parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[-1])
  parser.add_argument("--checkpoint", required=True, help="model checkpoint or training workdir")
  parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, BMP, WebP)")
  parser.add_argument("--top", type=positive_int, default=5, help="how many classes to print (default 5)")
  parser.add_argument("--ema", action="store_true", help="a training workdir's EMA weights")
  parser.add_argument("--best", action="store_true",
                      help="a training workdir's best checkpoint (by its best_metric) instead of its newest")
  parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
  args = parser.parse_args(argv)
  results = predict(args.checkpoint, args.images, top=args.top, ema=args.ema, best=args.best)
  if args.json:
    print(json.dumps(results, indent=1))
    return 0
  for result in results:
    print(result["image"])
    for rank, entry in enumerate(result["top"], start=1):
      print(f"  {rank}. {entry['probability']:7.2%}  {entry['name']}")
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
