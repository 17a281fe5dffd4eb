"""Issue 14's acceptance table and the sweep's price, from the JSON files of a `benchmarks/gpu.sh` run.

    python benchmarks/summarize.py --bench bench.json --warm bench_warm.json --sweep sweep.json \
        --markdown summary.md --json summary.json

--bench takes `python -m tinynet_jax.benchmark --json` files or the {"runs": [...]} file that `--merged` writes
(gpu.sh runs one benchmark process per model and merges them). Acceptance (issue 14, same run, same GPU, same
batch): tinynet_a train >= 2.5x timm eager and >= 2.2x torch.compile, eval >= 1.5x torch.compile; tinynet_e train
>= 3x timm eager; a row for every zoo model; resident-data step >= 90% of the synthetic-data step; compile with
the persistent cache warm <= 10% of cold.

The price: every model of the default ImageNet-100 plan (configs/sweep.py; `make_plan`), plus the formula's
model at each level, trained for the plan's epochs over our imagenet100's 50,000 training images (100 classes x
500; CMC's ImageNet-100 has 126,689, and an earlier estimate used that), evaluated each epoch on its 5,000, plus
its train- and eval-step compile. A plan model's images/s and compile seconds are interpolated in
log(MACs) between the measured zoo models' (TinyNet-A..E and the B^-k span the sweep's 0.06-0.87 x B0 levels),
train images/s scaled by the measured resident/synthetic ratio (a GPU box without TensorFlow trains sweeps on
device-resident data). Measured at batch 256; the plan trains at 512 (usually as fast or faster per image).
TensorFlow-free: runs on the device image.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from concurrent_sweep import sweep_config  # noqa: E402  (benchmarks/ is this script's directory)
from tinynet_jax.arch.zoo import ZOO  # noqa: E402
from tinynet_jax.files import atomic_write_json, atomic_write_text  # noqa: E402

IMAGENET100_TRAIN = 50_000  # 100 classes x TRAIN_PER_CLASS (data/tfdata/imagenet100.py, which imports TF)
IMAGENET100_EVAL = 5_000
PAPER_GPU_HOURS = 10.4 * 24  # "10.4 GPU-days"
GOAL_HOURS = 12.0  # issue 14's goal, in H100-hours
RATIO_TARGETS = (  # (model, our mode, timm impl, timm mode, target)
    ("tinynet_a", "train", "timm_eager", "train", 2.5),
    ("tinynet_a", "train", "timm_compile", "train", 2.2),
    ("tinynet_a", "eval", "timm_compile", "eval", 1.5),
    ("tinynet_e", "train", "timm_eager", "train", 3.0),
)
RESIDENT_TARGET = 0.9
WARM_TARGET = 0.1


def load_runs(paths: Iterable[str]) -> list[dict[str, Any]]:
  """Benchmark outputs, flattening merged files ({"runs": [...]})."""
  runs = []
  for path in paths:
    data = json.loads(Path(path).read_text())
    runs.extend(data["runs"] if "runs" in data else [data])
  return runs


def rows_of(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  return [row for run in runs for row in run["rows"]]


def find(rows, model: str, impl: str, mode: str) -> dict[str, Any] | None:
  """The last matching row (a later run of the same measurement replaces an earlier one)."""
  hits = [r for r in rows if r["model"] == model and r["impl"] == impl and r["mode"] == mode]
  return hits[-1] if hits else None


def check(name: str, value: float | None, target: float, *, at_most: bool = False) -> dict[str, Any]:
  if value is None or not math.isfinite(value):
    status = "not measured"
  else:
    status = "pass" if (value <= target if at_most else value >= target) else "MISS"
  return {"check": name, "value": value, "target": target, "at_most": at_most, "status": status}


def acceptance(rows, warm_rows, sweep_hours: float | None) -> list[dict[str, Any]]:
  checks = []
  for model, mode, impl, their_mode, target in RATIO_TARGETS:
    ours, theirs = find(rows, model, "tinynet_jax", mode), find(rows, model, impl, their_mode)
    value = ours["images_per_second"] / theirs["images_per_second"] if ours and theirs else None
    checks.append(check(f"{model} {mode} / {impl}", value, target))
  measured = {r["model"] for r in rows if r["impl"] == "tinynet_jax"}
  missing = [m for m in ZOO if m not in measured]
  checks.append({"check": "a row for every zoo model", "value": len(ZOO) - len(missing), "target": len(ZOO),
                 "at_most": False, "status": "pass" if not missing else "MISS",
                 "note": f"missing: {', '.join(missing)}" if missing else ""})
  for model in sorted(measured, key=list(ZOO).index):
    train, resident = find(rows, model, "tinynet_jax", "train"), find(rows, model, "tinynet_jax", "train_resident")
    if train and resident:
      checks.append(check(f"{model} train_resident / train", resident["images_per_second"] /
                          train["images_per_second"], RESIDENT_TARGET))
  for warm in warm_rows:
    cold = find(rows, warm["model"], "tinynet_jax", warm["mode"])
    if cold and cold["compile_seconds"] and warm["compile_seconds"] is not None:
      checks.append(check(f"{warm['model']} {warm['mode']} compile warm / cold",
                          warm["compile_seconds"] / cold["compile_seconds"], WARM_TARGET, at_most=True))
  checks.append(check("sweep accelerator-hours (goal, H100-hours)", sweep_hours, GOAL_HOURS, at_most=True))
  return checks


def _interpolator(points: Sequence[tuple[float, float]]):
  """value(macs): piecewise linear in (log MACs, log value) through `points`, flat beyond the ends."""
  points = sorted(points)
  xs = np.log([p[0] for p in points])
  ys = np.log([p[1] for p in points])
  return lambda macs: float(np.exp(np.interp(math.log(macs), xs, ys)))


def price_sweep(rows, sweep: dict[str, Any] | None = None, *, train_images: int = IMAGENET100_TRAIN
                ) -> dict[str, Any] | None:
  """Accelerator-hours of the default ImageNet-100 sweep from the measured rows (None without train rows)."""
  from tinynet_jax.arch import model_spec
  from tinynet_jax.costs import count_macs
  from tinynet_jax.search import sampler
  from tinynet_jax.search.runner import make_plan

  def points(mode: str, key: str) -> list[tuple[float, float]]:
    out = []
    for r in rows:
      if r["impl"] == "tinynet_jax" and r["mode"] == mode and r.get(key):
        out.append((count_macs(model_spec(r["model"], resolution=r["resolution"])), r[key]))
    return out

  train_ips, eval_ips = points("train", "images_per_second"), points("eval", "images_per_second")
  train_compile, eval_compile = points("train", "compile_seconds"), points("eval", "compile_seconds")
  if not train_ips:
    return None
  resident = [find(rows, r["model"], "tinynet_jax", "train_resident") for r in rows
              if r["impl"] == "tinynet_jax" and r["mode"] == "train"]
  fractions = [res["images_per_second"] / find(rows, res["model"], "tinynet_jax", "train")["images_per_second"]
               for res in resident if res]
  resident_fraction = min(1.0, float(np.mean(fractions))) if fractions else 1.0
  ips = _interpolator(train_ips)
  eips = _interpolator(eval_ips) if eval_ips else None
  tc = _interpolator(train_compile) if train_compile else (lambda _: 0.0)
  ec = _interpolator(eval_compile) if eval_compile else (lambda _: 0.0)

  config = sweep_config()
  plan = make_plan(config)
  epochs = float(config.train.num_epochs)
  macs = [sampler.model_macs(m, plan.base_resolution, plan.flops_classes) for m in plan.models]
  if config.sweep.formula_models:  # trained after the fit, one per level, at about the level's MACs
    macs += [level * plan.b0_macs for level in config.sweep.levels]
  per_model = []
  for m in macs:
    train_s = epochs * train_images / (ips(m) * resident_fraction)
    eval_s = epochs * IMAGENET100_EVAL / eips(m) if eips else 0.0
    compile_s = tc(m) + ec(m)
    per_model.append({"macs": m, "train_seconds": train_s, "eval_seconds": eval_s, "compile_seconds": compile_s})
  total = sum(p["train_seconds"] + p["eval_seconds"] + p["compile_seconds"] for p in per_model)
  out = {"models": len(per_model), "plan_models": len(plan.models), "epochs": epochs, "train_images": train_images,
         "resident_fraction": resident_fraction, "hours": total / 3600,
         "train_hours": sum(p["train_seconds"] for p in per_model) / 3600,
         "eval_hours": sum(p["eval_seconds"] for p in per_model) / 3600,
         "compile_hours": sum(p["compile_seconds"] for p in per_model) / 3600,
         "batches": sorted({r["batch"] for r in rows}), "plan_batch": config.train.batch_size,
         "paper_gpu_hours": PAPER_GPU_HOURS, "measured_models": sorted({r["model"] for r in rows
                                                                        if r["impl"] == "tinynet_jax"})}
  if sweep and sweep.get("speedup_wall"):
    out["concurrent_speedup_wall"] = sweep["speedup_wall"]
    out["hours_two_per_device"] = out["hours"] / sweep["speedup_wall"]
  return out


def _fmt(value, spec: str = ".2f") -> str:
  return "-" if value is None else format(value, spec)


def markdown(rows, warm_rows, checks, price, sweep, environment) -> str:
  device = (environment or {}).get("torch_device") or ", ".join((environment or {}).get("devices", [])) or "?"
  lines = ["# GPU benchmark summary (issue 14)", "",
           f"Device: {device}; jax {environment.get('jax', '?')}, torch {environment.get('torch', '-')}, "
           f"timm {environment.get('timm', '-')}." if environment else "Device: unknown.", "",
           "## Acceptance", "", "| check | value | target | status |", "|---|---|---|---|"]
  for c in checks:
    value = c["value"] if isinstance(c["value"], int) else _fmt(c["value"])
    sign = "<=" if c["at_most"] else ">="
    note = f" ({c['note']})" if c.get("note") else ""
    lines.append(f"| {c['check']} | {value} | {sign} {c['target']} | {c['status']}{note} |")
  lines += ["", "## Throughput (images/s) and compile seconds", "",
            "| model | mode | res | batch | ours | timm eager | torch.compile | ours/eager | ours/compile | "
            "compile s cold | compile s warm |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for model in [m for m in ZOO if find(rows, m, "tinynet_jax", "train") or find(rows, m, "tinynet_jax", "eval")
                or find(rows, m, "tinynet_jax", "train_resident")]:
    for mode in ("train", "eval", "train_resident"):
      ours = find(rows, model, "tinynet_jax", mode)
      if not ours:
        continue
      their_mode = "train" if mode == "train_resident" else mode
      eager, compiled = find(rows, model, "timm_eager", their_mode), find(rows, model, "timm_compile", their_mode)
      warm = find(warm_rows, model, "tinynet_jax", mode)
      ratio = lambda other: ours["images_per_second"] / other["images_per_second"] if other else None  # noqa: E731
      lines.append(f"| {model} | {mode} | {ours['resolution']} | {ours['batch']} | "
                   f"{ours['images_per_second']:,.0f} | {_fmt(eager and eager['images_per_second'], ',.0f')} | "
                   f"{_fmt(compiled and compiled['images_per_second'], ',.0f')} | {_fmt(ratio(eager))} | "
                   f"{_fmt(ratio(compiled))} | {_fmt(ours['compile_seconds'], '.1f')} | "
                   f"{_fmt(warm and warm['compile_seconds'], '.1f')} |")
  lines += ["", "## Sweep price (default ImageNet-100 plan)", ""]
  if price:
    lines += [f"{price['models']} models ({price['plan_models']} planned + the formula's per level) x "
              f"{price['epochs']:g} epochs x {price['train_images']:,} images (our imagenet100's training set, "
              "100 x 500), evaluated each epoch on "
              f"{IMAGENET100_EVAL:,}; images/s and compile seconds interpolated in log(MACs) between the measured "
              f"models ({', '.join(price['measured_models'])}), train rate x {price['resident_fraction']:.2f} "
              f"(resident/synthetic). Measured at batch {'/'.join(map(str, price['batches']))}; the plan trains at "
              f"{price['plan_batch']}.", "",
              f"**{price['hours']:.2f} accelerator-hours on this device** (train {price['train_hours']:.2f}, eval "
              f"{price['eval_hours']:.2f}, compile {price['compile_hours']:.2f}); the paper: "
              f"{price['paper_gpu_hours']:.0f} GPU-hours (10.4 GPU-days); the goal: <= {GOAL_HOURS:g} H100-hours."]
    if "hours_two_per_device" in price:
      lines.append(f"With two models per device at once (measured wall speedup "
                   f"{price['concurrent_speedup_wall']:.2f}x on the smallest level's models): "
                   f"{price['hours_two_per_device']:.2f} hours, if larger models gain as much (an upper bound).")
  else:
    lines.append("Not priced: no train rows measured.")
  if sweep:
    lines += ["", "## Two sweep models at once vs one after the other", "",
              f"Models {', '.join(m['id'] for m in sweep['models'])} (base {sweep['base_resolution']} px, "
              f"{sweep['steps']} steps of {sweep['batch']}, synthetic data on the device, through "
              "train_and_evaluate).", "", "| arrangement | wall s | images/s end to end |", "|---|---|---|"]
    for a in sweep["arrangements"]:
      lines.append(f"| {a['arrangement']} | {a['wall_seconds']:.1f} | {a['images_per_second_end_to_end']:,.0f} |")
    lines += ["", f"Wall speedup {sweep['speedup_wall']:.2f}x; steady-state images/s "
              f"{sweep['steady_images_per_second']['sequential']:,.0f} one at a time vs "
              f"{sweep['steady_images_per_second']['concurrent']:,.0f} together "
              f"({sweep['speedup_steady']:.2f}x)."]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--bench", nargs="*", default=[], help="cold benchmark JSON files (or a --merged file)")
  parser.add_argument("--warm", nargs="*", default=[], help="benchmark JSON of the warm-cache rerun")
  parser.add_argument("--sweep", help="concurrent_sweep.py's JSON")
  parser.add_argument("--merged", help="also write every --bench run, verbatim, into one file here")
  parser.add_argument("--markdown", help="write the markdown summary here (it is printed too)")
  parser.add_argument("--json", help="write the checks and the price here")
  args = parser.parse_args(argv)
  runs = load_runs(args.bench)
  rows, warm_rows = rows_of(runs), rows_of(load_runs(args.warm))
  sweep = json.loads(Path(args.sweep).read_text()) if args.sweep and Path(args.sweep).exists() else None
  price = price_sweep(rows, sweep)
  checks = acceptance(rows, warm_rows, price and price["hours"])
  environment = runs[0]["environment"] if runs else {}
  text = markdown(rows, warm_rows, checks, price, sweep, environment)
  print(text)
  if args.merged:
    atomic_write_json(args.merged, {"runs": runs})
  if args.markdown:
    atomic_write_text(args.markdown, text)
  if args.json:
    atomic_write_json(args.json, {"environment": environment, "checks": checks, "price": price, "sweep": sweep})
  return 0


if __name__ == "__main__":
  sys.exit(main())
