"""Imports a timm / official TinyNet PyTorch checkpoint into a tinynet_jax model checkpoint.

    python -m tinynet_jax.convert --timm-checkpoint tinynet_a.pth --model tinynet_a --out ckpt/tinynet_a
    python -m tinynet_jax.convert --timm-checkpoint model.safetensors --r 0.7 --d 0.9 --w 0.6 --out DIR

The import is strict (every tensor must be present, expected and of the right shape). `.safetensors` files
are read without torch; `.pth` needs it. The result loads with `tinynet_jax.load(DIR)`, torch-free.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

from tinynet_jax.tools import cli
from tinynet_jax.errors import CheckpointError


def convert(checkpoint_path: str, spec, out: str, *, num_classes: int | None = None, use_ema: bool = False,
            overwrite: bool = False):
  """Reads, checks and writes; returns the output path. Nothing is written unless every check passes."""
  from tinynet_jax.checkpoints import abstract_variables, import_state_dict, read_state_dict, save
  from tinynet_jax.models import create_model

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


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(prog="python -m tinynet_jax.convert", description=__doc__.split("\n")[0])
  parser.add_argument("--timm-checkpoint", required=True, help=".pth/.pt/.bin (needs torch) or .safetensors")
  cli.add_model_args(parser)
  parser.add_argument("--out", required=True, help="output checkpoint directory (must not exist)")
  parser.add_argument("--num-classes", type=cli.positive_int,
                      help="classifier size (default: taken from the checkpoint)")
  parser.add_argument("--ema", action="store_true", help="take timm's 'state_dict_ema' weights")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
  args = parser.parse_args(argv)
  if not any(getattr(args, k) is not None for k in ("model", "r", "d", "w", "phi")):
    parser.error("name the architecture: --model NAME, --r/--d/--w or --phi")
  spec = cli.spec_from_args(args)
  path = convert(args.timm_checkpoint, spec, args.out, num_classes=args.num_classes, use_ema=args.ema,
                 overwrite=args.overwrite)
  print(f"wrote {path} ({spec.label}, {spec.resolution}px)")
  return 0


def entry() -> int:
  return cli.run(main, "python -m tinynet_jax.convert")


if __name__ == "__main__":
  sys.exit(entry())
