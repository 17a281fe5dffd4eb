"""Imports a timm / official TinyNet PyTorch or MindSpore checkpoint into a tinynet_jax model checkpoint.

    python -m tinynet_jax.convert --timm-checkpoint tinynet_a.pth --model tinynet_a --out ckpt/tinynet_a
    python -m tinynet_jax.convert --timm-checkpoint model.safetensors --r 0.7 --d 0.9 --w 0.6 --out DIR
    python -m tinynet_jax.convert --mindspore-checkpoint ema_best.ckpt --model tinynet_c --out DIR

The import is strict (every tensor must be present, expected and of the right shape). `.safetensors` files
are read without torch; `.pth` needs it; a MindSpore `.ckpt` needs neither MindSpore nor protobuf. The result
loads with `tinynet_jax.load(DIR)`, torch-free.
"""
from __future__ import annotations

import sys
from typing import Sequence

from tinynet_jax.checkpoints.conversion import convert
from tinynet_jax.tools import cli


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(prog="python -m tinynet_jax.convert", description=__doc__.split("\n")[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--timm-checkpoint", help=".pth/.pt/.bin (needs torch) or .safetensors")
  source.add_argument("--mindspore-checkpoint",
                      help="the official MindSpore trainer's .ckpt (network tensors; optimizer state dropped)")
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
  source = "mindspore" if args.mindspore_checkpoint else "timm"
  path = convert(args.mindspore_checkpoint or args.timm_checkpoint, spec, args.out, num_classes=args.num_classes,
                 use_ema=args.ema, overwrite=args.overwrite, source=source)
  print(f"wrote {path} ({spec.label}, {spec.resolution}px)")
  return 0


def entry() -> int:
  return cli.run(main, "python -m tinynet_jax.convert")


if __name__ == "__main__":
  sys.exit(entry())
