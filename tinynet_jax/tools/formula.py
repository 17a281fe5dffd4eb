"""``python -m tinynet_jax.formula --flops 150M [--from DIR/formula.json | --preset paper] [--json] [--emit-config]``

The tiny formula's network for any FLOPs budget: r and d from the fitted Gaussian processes, w solved with the
exact MACs counter. `--preset paper` is a curve (GP mean) through the published TinyNet A-E, with no uncertainty;
`--from` reads a sweep's fit, whose ± 2σ is the GP posterior band of the fitted curve (MAP hyper-parameters), not
a confidence interval on the optimum. c is printed with its reference (B0 at which base resolution, which head),
and `--emit-config` trains on the formula's own dataset at its base resolution.
"""
from __future__ import annotations

import argparse
import json
import sys

from tinynet_jax.tools.cli import ArgumentParser, run

PROG = "python -m tinynet_jax.formula"


def build_parser() -> argparse.ArgumentParser:
  parser = ArgumentParser(prog=PROG, description="The tiny formula's network for a FLOPs (MACs) budget.")
  parser.add_argument("--flops", nargs="+", required=True, metavar="BUDGET",
                      help="one or more MACs budgets, e.g. 150M 1.2G 24e6")
  source = parser.add_mutually_exclusive_group()
  source.add_argument("--from", dest="path", metavar="FORMULA_JSON", help="a sweep's formula.json")
  source.add_argument("--preset", choices=("paper",), help="the GP through TinyNet A-E (default)")
  parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
  parser.add_argument("--emit-config", action="store_true", help="also print the command that trains it")
  parser.add_argument("--dataset", help="dataset for --emit-config (default: the one the formula was fitted on)")
  return parser


def train_command(model, dataset: str) -> str:
  """The exact command that trains the formula's network with the paper's recipe."""
  overrides = "" if model.base_resolution == 224 else f" --config.base_resolution={model.base_resolution}"
  name = f"tiny_{model.target_macs / 1e6:g}M"
  return (f"python -m tinynet_jax.main --workdir=runs/{name} "
          f"--config=configs/train.py:r={model.r:g},d={model.d:g},w={model.w:g},rules={model.rules},"
          f"dataset={dataset}{overrides}")


def _with_band(value: float, std: float | None) -> str:
  return f"{value:6.3f}" + ("" if std is None else f"±{2 * std:.3f}")


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  from tinynet_jax.errors import SearchError
  from tinynet_jax.search.formula import Formula, paper_formula, parse_budget
  budgets = [parse_budget(text) for text in args.flops]
  formula = Formula.load(args.path) if args.path else paper_formula()
  dataset = args.dataset or formula.dataset
  if args.emit_config and not dataset:
    raise SearchError(f"{args.path} does not record the dataset it was fitted on (an older formula file); "
                      "pass --dataset")
  models = [formula.model_for(budget) for budget in budgets]
  uncertainty = ("GP posterior ± 2σ of the fitted curve (MAP hyper-parameters), not a confidence interval on the "
                 "optimum" if formula.measured else "none: a curve through published points, not a measurement")
  if args.json:
    records = [dict(m.to_dict(), **({"command": train_command(m, dataset)} if args.emit_config else {}))
               for m in models]
    print(json.dumps({"source": formula.source, "dataset": formula.dataset, "c_reference": formula.c_reference,
                      "selection": formula.selection, "uncertainty": uncertainty, "models": records}, indent=1))
    return 0
  print(f"formula: {formula.source}")
  fitted = (formula.selection or {}).get("description", "not recorded (older formula file)")
  print(f"fitted on: {fitted}; {len(formula.points)} points, c {formula.c_range[0]:.4g}-{formula.c_range[1]:.4g}")
  print(f"c = MACs / MACs of {formula.c_reference}")
  print(f"uncertainty of r and d: {uncertainty}")
  band = " ± 2σ" if formula.measured else ""
  print(f"{'budget':>10} {'c':>7} {'r' + band:>12} {'d' + band:>12} {'w':>6} {'input':>6} {'MACs':>9} {'params':>11}")
  for m in models:
    note = "  (extrapolated)" if m.extrapolated else ""
    print(f"{m.target_macs / 1e6:9.2f}M {m.c:7.4f} {_with_band(m.r, m.r_std):>12} {_with_band(m.d, m.d_std):>12} "
          f"{m.w:6g} {m.resolution:6d} {m.macs / 1e6:8.2f}M {m.params:11,}{note}")
  if args.emit_config:
    for m in models:
      print(train_command(m, dataset))
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
