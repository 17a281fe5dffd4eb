r"""Does input resolution carry information on a dataset? One fixed network trained at several resolutions.

    python benchmarks/dataset_gate.py                              # digit_mosaic, 12/22/32 px, seeds 0 and 1
    python benchmarks/dataset_gate.py --dataset=digits --base=32   # the contrast: digits' answer does not depend on r

Trains the network (d, w) fixed, r = each of `--fractions` of `--base` px, with each seed, through the real engine
(`tinynet_jax.train.train_and_evaluate`, data on the device, whole images, the demo's kind of short schedule),
prints resolution, seed, raw and EMA validation top-1, and the verdict: the gap between the mean top-1 at the
highest and at the lowest resolution against the pooled seed sigma (the within-resolution standard deviation over
seeds, pooled over resolutions). A dataset passes when the gap exceeds `--factor` (3) x sigma: a search over r
can only find what resolution is worth if it is worth more than retraining noise.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time

import ml_collections

from tinynet_jax.train.config import apply_short_schedule, apply_whole_images, base_config, set_duration

FRACTIONS = (0.4, 0.7, 1.0)
SEEDS = (0, 1)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The network and schedule of the gate (small enough for a 2-core CPU)."""
  d: float = 0.5
  w: float = 0.5
  steps: int = 300
  batch_size: int = 64
  warmup_steps: int = 20
  lr: float = 0.048  # at a global batch of 1024, the paper's
  decay_rate: float = 0.8  # per epoch
  ema_decay: float = 0.99


def gate_config(dataset: str, base: int, r: float, seed: int, recipe: Recipe,
                data_dir: str | None = None) -> ml_collections.ConfigDict:
  config = base_config()
  config.dataset, config.data_dir, config.seed = dataset, data_dir, seed
  config.model, config.r, config.d, config.w = "", r, recipe.d, recipe.w
  config.base_resolution = base
  config.data_on_device = True
  apply_whole_images(config)
  apply_short_schedule(config, batch_size=recipe.batch_size, total_steps=recipe.steps, decay_rate=recipe.decay_rate,
                       ema_decay=recipe.ema_decay, log_every_steps=recipe.steps,
                       checkpoint_every_steps=recipe.steps)
  set_duration(config, "warmup", steps=recipe.warmup_steps)
  config.lr, config.lr_batch_size = recipe.lr, 1024
  config.drop_rate = 0.0
  config.eval_every_steps = recipe.steps
  return config


@dataclasses.dataclass(frozen=True)
class Verdict:
  low: float  # mean top-1 at the lowest resolution
  high: float  # ... and at the highest
  sigma: float  # pooled seed standard deviation (floored at one validation example)
  factor: float

  @property
  def gap(self) -> float:
    return self.high - self.low

  @property
  def passed(self) -> bool:
    return self.gap > self.factor * self.sigma

  def __str__(self) -> str:
    word = "PASS" if self.passed else "FAIL"
    return (f"{word}: top-1 {self.high:.4f} (highest resolution) - {self.low:.4f} (lowest) = {self.gap:+.4f}; "
            f"seed sigma {self.sigma:.4f}; gap / sigma = {self.gap / self.sigma:.1f} (needs > {self.factor:g})")


def verdict(rows: list[dict], metric: str = "top1", factor: float = 3.0, num_eval: int = 1) -> Verdict:
  """The gate's verdict from rows {'resolution', 'seed', metric}; needs >= 2 seeds at each resolution."""
  by_resolution: dict[int, list[float]] = {}
  for row in rows:
    by_resolution.setdefault(row["resolution"], []).append(row[metric])
  if len(by_resolution) < 2 or min(len(v) for v in by_resolution.values()) < 2:
    raise ValueError("the gate needs at least two resolutions with at least two seeds each")
  means = {res: sum(v) / len(v) for res, v in by_resolution.items()}
  squares = sum(sum((x - means[res]) ** 2 for x in v) for res, v in by_resolution.items())
  dof = sum(len(v) - 1 for v in by_resolution.values())
  sigma = max(math.sqrt(squares / dof), 1.0 / num_eval)
  return Verdict(means[min(means)], means[max(means)], sigma, factor)


def run(dataset: str, base: int, fractions=FRACTIONS, seeds=SEEDS, recipe: Recipe = Recipe(),
        data_dir: str | None = None, workdir: str | None = None, log=print) -> list[dict]:
  """Trains every (fraction, seed); returns rows with resolution, seed, top1, ema_top1, wall_seconds."""
  from tinynet_jax import data
  from tinynet_jax.train import train_and_evaluate
  num_eval = data.dataset_info(dataset, data_dir).num_eval
  rows = []
  with tempfile.TemporaryDirectory(prefix="dataset_gate_") as scratch:
    for r in fractions:
      for seed in seeds:
        start = time.time()
        run_dir = os.path.join(workdir or scratch, f"{dataset}_r{r:g}_s{seed}")
        final = train_and_evaluate(gate_config(dataset, base, r, seed, recipe, data_dir), run_dir)
        row = dict(resolution=final["resolution"], seed=seed, top1=final["top1"],
                   ema_top1=final.get("ema_top1", float("nan")), wall_seconds=time.time() - start,
                   num_eval=num_eval)
        log(f"{row['resolution']:>10d} {seed:>4d} {row['top1']:>7.4f} {row['ema_top1']:>8.4f} "
            f"{row['wall_seconds']:>6.1f}s")
        rows.append(row)
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="digit_mosaic")
  parser.add_argument("--base", type=int, default=32, help="base resolution (px at r = 1)")
  parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)))
  parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
  parser.add_argument("--steps", type=int, default=Recipe.steps)
  parser.add_argument("--d", type=float, default=Recipe.d)
  parser.add_argument("--w", type=float, default=Recipe.w)
  parser.add_argument("--factor", type=float, default=3.0)
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--workdir", default=None, help="keep the runs here (default: a temporary directory)")
  args = parser.parse_args(argv)
  recipe = Recipe(d=args.d, w=args.w, steps=args.steps)
  fractions = [float(f) for f in args.fractions.split(",")]
  seeds = [int(s) for s in args.seeds.split(",")]
  print(f"dataset {args.dataset}, base {args.base} px, network d={recipe.d:g} w={recipe.w:g}, {recipe.steps} "
        f"steps of {recipe.batch_size}")
  print(f"{'resolution':>10} {'seed':>4} {'top1':>7} {'ema_top1':>8} {'wall':>7}")
  rows = run(args.dataset, args.base, fractions, seeds, recipe, args.data_dir, args.workdir)
  for metric in ("top1", "ema_top1"):
    print(f"{metric}: {verdict(rows, metric, args.factor, rows[0]['num_eval'])}")
  return 0 if verdict(rows, "top1", args.factor, rows[0]["num_eval"]).passed else 1


if __name__ == "__main__":
  sys.exit(main())
