"""``python -m tinynet_jax.analyze DIR|results.jsonl [--out DIR] [--metric top1]``: frontier, formula, figures, report.

Runs over any sweep's results (also one assembled from job-array shards) without training anything.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinynet_jax.search.analysis import FIT_K, FIT_ON, analyze
from tinynet_jax.search.results import results_path
from tinynet_jax.tools.cli import ArgumentParser, run

PROG = "python -m tinynet_jax.analyze"


def build_parser() -> argparse.ArgumentParser:
  parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[-1])
  parser.add_argument("results", help="a sweep directory or its results.jsonl")
  parser.add_argument("--out", help="where to write formula.json, figures and report.md (default: the sweep dir)")
  parser.add_argument("--metric", default="top1", choices=("top1", "ema_top1"), help="accuracy for the frontier")
  parser.add_argument("--fit-on", default="top_k", choices=FIT_ON,
                      help="top_k: the best --fit-k of each level (default; chosen by simulation), frontier: the "
                           "eps-dominance frontier, level_best: top_k with k=1, auto: the frontier unless it spans "
                           "fewer than 3 levels")
  parser.add_argument("--fit-k", type=int, default=FIT_K, help="models per level for top_k (default %(default)s)")
  return parser


def print_summary(summary: dict) -> None:
  """The analysis in a few lines: where the report and formula are, and the formula's model per level."""
  print(f"report: {summary['report']}")
  print(f"formula: {summary['formula_path']} (fitted on the {summary['selection']['description']}; "
        f"frontier: {', '.join(summary['frontier'])})")
  for row in summary.get("formula", ()):
    print(f"  {row['budget_macs'] / 1e6:8.2f}M MACs -> r={row['r']:.3f} d={row['d']:.3f} w={row['w']:g} "
          f"({row['resolution']} px, {row['macs'] / 1e6:.2f}M MACs, {row['params']:,} params)")


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  path = results_path(args.results)
  out = Path(args.out) if args.out else path.parent
  summary = analyze(path, out, metric=args.metric, fit_on=args.fit_on, k=args.fit_k)
  print_summary(summary)
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
