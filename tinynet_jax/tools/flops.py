"""Parameters and MACs ("FLOPs" in the paper) of the zoo or of any point of the (r, d, w) cube.

    python -m tinynet_jax.flops                          # the zoo
    python -m tinynet_jax.flops --model tinynet_c        # one model, per stage
    python -m tinynet_jax.flops --r 0.7 --d 0.9 --w 0.6 [--rules efficientnet] [--resolution 160] [--json]
"""
from __future__ import annotations

import json
import sys
from typing import Sequence

from tinynet_jax.tools import cli
from tinynet_jax.costs import count_macs, count_params, stage_costs
from tinynet_jax.arch import ZOO, ModelSpec, model_spec


def _fmt(value, spec: str = "") -> str:
  return "-" if value is None else format(value, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
  line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(cells, widths)))
  return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def zoo_rows(num_classes: int = 1000) -> list[dict]:
  rows = []
  for name, entry in ZOO.items():
    spec = model_spec(name)
    rows.append({"model": name, "r": spec.r, "d": spec.d, "w": spec.w, "phi": entry.phi, "rules": spec.rules,
                 "resolution": spec.resolution, "params": count_params(spec, num_classes),
                 "macs": count_macs(spec, num_classes=num_classes), "paper_mflops": entry.paper_mflops,
                 "paper_top1": entry.paper_top1, "released_top1": entry.released_top1})
  return rows


def model_report(spec: ModelSpec, num_classes: int = 1000) -> dict:
  return {"model": spec.label, "r": spec.r, "d": spec.d, "w": spec.w, "rules": spec.rules,
          "resolution": spec.resolution, "depths": list(spec.depths), "widths": list(spec.widths),
          "stem_channels": spec.stem_channels, "head_channels": spec.head_channels,
          "params": count_params(spec, num_classes), "macs": count_macs(spec, num_classes=num_classes),
          "stages": [vars(row) for row in stage_costs(spec, num_classes=num_classes)]}


def format_zoo(rows: list[dict]) -> str:
  header = ["model", "r", "d", "w", "rules", "input", "params", "MACs", "paper FLOPs", "top-1 paper",
            "top-1 released"]
  body = [[r["model"], f"{r['r']:.3g}", f"{r['d']:.3g}", f"{r['w']:.3g}", r["rules"], r["resolution"],
           f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}M", _fmt(r["paper_mflops"], "g") +
           ("M" if r["paper_mflops"] else ""), _fmt(r["paper_top1"], ".1f"), _fmt(r["released_top1"], ".3f")]
          for r in rows]
  return _table(header, body)


def format_model(report: dict) -> str:
  title = (f"{report['model']}: r={report['r']:.4g} d={report['d']:.4g} w={report['w']:.4g} "
           f"rules={report['rules']} input={report['resolution']}px params={report['params']:,} "
           f"MACs={report['macs'] / 1e6:.2f}M")
  header = ["stage", "blocks", "k", "s", "channels", "size", "params", "MACs"]
  body = [[s["name"], s["blocks"] or "", s["kernel"], s["stride"], f"{s['in_channels']}->{s['out_channels']}",
           f"{s['in_size']}->{s['out_size']}", f"{s['params']:,}", f"{s['macs'] / 1e6:.2f}M"]
          for s in report["stages"]]
  return title + "\n" + _table(header, body)


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(prog="python -m tinynet_jax.flops", description=__doc__.split("\n")[0])
  cli.add_model_args(parser)
  parser.add_argument("--num-classes", type=cli.positive_int, default=1000)
  parser.add_argument("--json", action="store_true", help="machine-readable output")
  args = parser.parse_args(argv)
  one_model = any(getattr(args, k) is not None for k in ("model", "r", "d", "w", "phi", "rules"))
  if not one_model and args.resolution is not None:
    parser.error("--resolution needs a model (--model, --r/--d/--w or --phi)")
  if one_model:
    result = model_report(cli.spec_from_args(args), args.num_classes)
    text = format_model(result)
  else:
    result = zoo_rows(args.num_classes)
    text = format_zoo(result)
  print(json.dumps(result, indent=1) if args.json else text)
  return 0


def entry() -> int:
  return cli.run(main, "python -m tinynet_jax.flops")


if __name__ == "__main__":
  sys.exit(entry())
