"""``python -m tinynet_jax.benchmark``: train-step and eval throughput, compile time and peak memory, on
synthetic data (no TensorFlow); with ``--compare timm``, timm's same networks measured in the same run.

    python -m tinynet_jax.benchmark --models tinynet_a,tinynet_e --batch 256 --json bench.json
    python -m tinynet_jax.benchmark --models all --compare timm --json bench.json   # docs/performance.md

Our steps are the trainer's own, built by `tinynet_jax.train.engine` from a synthetic-data training config
(the paper recipe; see `tinynet_jax.train.benchmark`, which holds the measurements; this file parses, prints
and writes JSON). ``train_resident`` is the train step on a device-resident dataset with the augmentation
inside the step (the sweeps' input path). timm's step is the same work in PyTorch, eager or compiled.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

import jax

from tinynet_jax.arch import model_spec
from tinynet_jax.arch.zoo import ZOO
from tinynet_jax.errors import ConfigError
from tinynet_jax.files import atomic_write_json
from tinynet_jax.tools.cli import ArgumentParser, positive_int, run
from tinynet_jax.train import benchmark
from tinynet_jax.train.benchmark import MODES

PROG = "python -m tinynet_jax.benchmark"
TIMM_MODES = ("eager", "compile")
DTYPES = ("auto", "bfloat16", "float32")


def _models(text: str) -> list[str]:
  names = list(ZOO) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in ZOO]
  if unknown or not names:
    raise argparse.ArgumentTypeError(f"unknown model(s) {', '.join(unknown) or text!r} "
                                     f"(known: all, {', '.join(ZOO)})")
  return names


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
  def parse(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
      raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(allowed)}, got {text!r}")
    return values
  return parse


def build_parser() -> argparse.ArgumentParser:
  parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[-1])
  parser.add_argument("--models", type=_models, default=_models("tinynet_a,tinynet_e"),
                      help="comma list of zoo models, or 'all' (default tinynet_a,tinynet_e)")
  parser.add_argument("--batch", type=positive_int, default=256, help="global batch (default 256)")
  parser.add_argument("--dtype", choices=DTYPES, default="auto",
                      help="compute dtype; auto = bfloat16 on GPU/TPU, float32 on CPU")
  parser.add_argument("--modes", type=_choices(MODES), default=list(MODES), help=f"of {', '.join(MODES)}")
  parser.add_argument("--resolution", type=positive_int, help="input size for every model (default: the model's)")
  parser.add_argument("--steps", type=positive_int, default=50, help="timed steps (default 50)")
  parser.add_argument("--warmup", type=positive_int, default=5, help="untimed steps first (default 5)")
  parser.add_argument("--compare", choices=("timm",), help="also measure timm's models in this run")
  parser.add_argument("--timm-modes", type=_choices(TIMM_MODES), default=list(TIMM_MODES),
                      help="eager, compile or both (default both)")
  parser.add_argument("--input-pipeline", action="store_true",
                      help="also measure the ImageNet tf.data train transform per host core (needs the data extra)")
  parser.add_argument("--json", help="write the rows and ratios here (atomically)")
  return parser


def _format(rows: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]]) -> str:
  lines = [f"{'model':<18}{'impl':<14}{'mode':<16}{'res':>5}{'img/s':>11}{'ms/step':>10}{'compile s':>11}"
           f"{'peak MiB':>10}"]
  for r in rows:
    compile_s = "-" if r["compile_seconds"] is None else f"{r['compile_seconds']:.1f}"
    peak = "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.0f}"
    lines.append(f"{r['model']:<18}{r['impl']:<14}{r['mode']:<16}{r['resolution']:>5}"
                 f"{r['images_per_second']:>11,.0f}{r['step_ms']:>10.2f}{compile_s:>11}{peak:>10}")
  if ratio_rows:
    lines.append("")
    lines.extend(f"{r['model']:<18}{r['mode']:<16} ours / {r['versus']:<14} {r['ratio']:.2f}x" for r in ratio_rows)
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if args.compare == "timm":
    try:
      import timm  # noqa: F401
      import torch  # noqa: F401
    except ImportError as e:
      raise ConfigError(f"--compare timm needs torch and timm importable ({e})") from None
  if args.batch % jax.device_count():
    raise ConfigError(f"--batch {args.batch} must divide evenly over {jax.device_count()} devices")
  rows = []
  for name in args.models:
    spec = model_spec(name, resolution=args.resolution)
    base = {"model": name, "resolution": spec.resolution, "batch": args.batch, "dtype": args.dtype}
    for mode in args.modes:
      config = benchmark.benchmark_config(name, mode, batch=args.batch, dtype=args.dtype, resolution=args.resolution)
      rows.append({**base, "impl": "tinynet_jax", "mode": mode,
                   **benchmark.ours(config, mode, steps=args.steps, warmup=args.warmup)})
      print(_format(rows[-1:], []).splitlines()[-1], file=sys.stderr, flush=True)
    if args.compare == "timm":
      for timm_mode in args.timm_modes:
        for mode in [m for m in args.modes if m != "train_resident"]:
          rows.append({**base, "impl": f"timm_{timm_mode}", "mode": mode,
                       **benchmark.theirs(spec, mode, timm_mode, batch=args.batch, dtype=args.dtype,
                                          steps=args.steps, warmup=args.warmup)})
          print(_format(rows[-1:], []).splitlines()[-1], file=sys.stderr, flush=True)
  ratio_rows = benchmark.ratios(rows)
  print(_format(rows, ratio_rows))
  pipeline = benchmark.input_pipeline(args.resolution or 224) if args.input_pipeline else []
  for row in pipeline:
    print(f"tf.data {row['recipe']:<6} {row['threads']} thread(s): {row['images_per_second']:,.0f} img/s "
          f"({row['images_per_second_per_core']:,.0f} per core)")
  if args.json:
    atomic_write_json(args.json, {"environment": benchmark.environment(), "rows": rows, "ratios": ratio_rows,
                                  "input_pipeline": pipeline,
                                  "arguments": {k: v for k, v in vars(args).items()}})
    print(f"json: {args.json}")
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
