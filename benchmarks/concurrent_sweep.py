"""Two sweep models trained at once on one accelerator vs one after the other (issue 14), TensorFlow-free.

    python benchmarks/concurrent_sweep.py --json sweep.json --workdir /tmp/sweep_bench [--smoke]

The models are the first two random models of the smallest level of the default ImageNet-100 plan
(configs/sweep.py), at their own resolutions, with the sweep's train config (`base_config` + its short
schedule) on 'synthetic' data kept on the device (the sweeps' input path), through `train_and_evaluate`, so
compile, init, eval and checkpointing are in the wall time as they are in a sweep. 'sequential': one process
trains A then B (a shard). 'concurrent': two processes, one model each, started together. Reported: wall
seconds of each arrangement, end-to-end images/s (all trained images / wall), and each model's steady images/s
(the loop's last log interval). Small models leave most of an H100/H200 idle; this measures how much of that
a second process recovers.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from tinynet_jax.files import atomic_write_json  # noqa: E402

CHILD_MEMORY_FRACTION = "0.45"  # two JAX processes share the device: neither may preallocate 75% of it


def sweep_config():
  spec = importlib.util.spec_from_file_location("tinynet_sweep_config", REPO / "configs" / "sweep.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def pick_models(config, count: int = 2):
  """The first `count` random models of the plan's smallest level (the models that leave the device idlest)."""
  from tinynet_jax.search.runner import make_plan
  plan = make_plan(config)
  level = min(config.sweep.levels)
  return [m for m in plan.models if m.kind == "random" and m.level == level][:count]


def model_config(config, model, *, steps: int, batch: int, num_train: int, base_resolution: int | None = None):
  """The sweep's train config for `model`, shortened to `steps` on resident synthetic data; `base_resolution`
  shrinks the input (smoke runs: the plan itself is drawn at the sweep's base, where its levels exist)."""
  from tinynet_jax.search.runner import train_config
  c = train_config(config, model)
  with c.unlocked():
    if base_resolution:
      c.base_resolution = base_resolution
    c.dataset = "synthetic"
    c.dataset_options.num_classes = 100  # ImageNet-100's head
    c.dataset_options.num_train = num_train
    c.dataset_options.num_eval = batch
    c.data_on_device = True
    c.augment.color_jitter = 0.0  # the on-device augmentation is crop + flip
    c.batch_size = batch
    c.total_steps = steps
    c.log_every_steps = max(1, steps // 2)  # the last interval is steady state (compile waits fall in the first)
    c.eval_every_steps = steps
    c.checkpoint_every_steps = steps
  return c


def child(args) -> int:
  """Trains the plan models `args.indices` in turn in this process; writes one record per model."""
  from tinynet_jax.search.sampler import SweepModel
  from tinynet_jax.train import train_and_evaluate
  config = sweep_config()
  models = [SweepModel.from_dict(m) for m in json.loads(Path(args.models_json).read_text())]
  records = []
  for i in args.indices:
    c = model_config(config, models[i], steps=args.steps, batch=args.batch, num_train=args.num_train,
                     base_resolution=args.base_resolution)
    start = time.perf_counter()
    final = train_and_evaluate(c, Path(args.workdir) / f"{args.tag}_{i}_{models[i].id}")
    records.append({"id": models[i].id, "resolution": final["resolution"], "macs": final["macs"],
                    "steps": final["steps"], "batch": args.batch, "seconds": time.perf_counter() - start,
                    "steady_images_per_second": final["images_per_second"]})
  atomic_write_json(args.child_json, records)
  return 0


def _start(args, indices, tag: str, out: Path) -> subprocess.Popen:
  command = [sys.executable, __file__, "--child", "--child-json", str(out), "--models-json", str(out.parent /
             "models.json"), "--tag", tag, "--workdir", args.workdir,
             "--steps", str(args.steps), "--batch", str(args.batch), "--num-train", str(args.num_train),
             "--indices", ",".join(map(str, indices))]
  if args.base_resolution:
    command += ["--base-resolution", str(args.base_resolution)]
  env = dict(os.environ, XLA_PYTHON_CLIENT_MEM_FRACTION=CHILD_MEMORY_FRACTION)
  if not args.cache_dir:  # every sweep model is a new program: a warm cache would flatter the comparison
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
  else:
    env.update(JAX_COMPILATION_CACHE_DIR=args.cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  return subprocess.Popen(command, env=env)


def _wait(processes: list[subprocess.Popen]) -> None:
  codes = [p.wait() for p in processes]
  if any(codes):
    raise SystemExit(f"a training process failed (exit codes {codes})")


def arrangement(name: str, records: list[dict], wall: float) -> dict:
  images = sum(r["steps"] * r["batch"] for r in records)
  return {"arrangement": name, "wall_seconds": wall, "images": images, "images_per_second_end_to_end": images / wall,
          "models": records}


def parent(args) -> int:
  config = sweep_config()
  models = pick_models(config)
  if args.smoke:  # one model twice: a single compile (then the smoke-only cache), the same plumbing
    models = [models[0], models[0]]
  if len(models) < 2:
    raise SystemExit("the plan's smallest level has fewer than two random models")
  Path(args.workdir).mkdir(parents=True, exist_ok=True)
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    atomic_write_json(tmp / "models.json", [m.to_dict() for m in models])
    start = time.perf_counter()
    _wait([_start(args, [0, 1], "seq", tmp / "seq.json")])
    results.append(arrangement("sequential", json.loads((tmp / "seq.json").read_text()), time.perf_counter() - start))
    start = time.perf_counter()
    _wait([_start(args, [i], f"conc{i}", tmp / f"conc{i}.json") for i in (0, 1)])
    records = [r for i in (0, 1) for r in json.loads((tmp / f"conc{i}.json").read_text())]
    results.append(arrangement("concurrent", records, time.perf_counter() - start))
  seq, conc = results
  # One after the other, the device's steady rate over both models is images / sum of each model's steady time;
  # at once, it is the sum of the two rates (their last log intervals overlap when their compiles take alike).
  seq_steady = seq["images"] / sum(r["steps"] * r["batch"] / r["steady_images_per_second"] for r in seq["models"])
  conc_steady = sum(r["steady_images_per_second"] for r in conc["models"])
  summary = {"models": [m.to_dict() for m in models],
             "base_resolution": args.base_resolution or config.train.base_resolution,
             "steps": args.steps, "batch": args.batch, "arrangements": results,
             "speedup_wall": seq["wall_seconds"] / conc["wall_seconds"],
             "steady_images_per_second": {"sequential": seq_steady, "concurrent": conc_steady},
             "speedup_steady": conc_steady / seq_steady}
  atomic_write_json(args.json, summary)
  print(f"sequential {seq['wall_seconds']:.1f} s, concurrent {conc['wall_seconds']:.1f} s "
        f"(wall speedup {summary['speedup_wall']:.2f}x, steady-state {summary['speedup_steady']:.2f}x)")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", help="write the result here")
  parser.add_argument("--workdir", required=True, help="scratch directory for the training workdirs")
  parser.add_argument("--smoke", action="store_true",
                      help="tiny CPU run: the first model twice, 32 px base, 3 steps, batch 8")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch", type=int, default=512, help="the sweep's batch (configs/sweep.py)")
  parser.add_argument("--num-train", type=int, default=2048, help="resident synthetic images")
  parser.add_argument("--base-resolution", type=int, help="default: the sweep's (224)")
  parser.add_argument("--cache-dir", help="persistent compilation cache for the children (smoke only)")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--child-json", help=argparse.SUPPRESS)
  parser.add_argument("--models-json", help=argparse.SUPPRESS)
  parser.add_argument("--tag", help=argparse.SUPPRESS)
  parser.add_argument("--indices", type=lambda s: [int(v) for v in s.split(",")], help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.smoke:
    args.steps, args.batch, args.num_train = 3, 8, 32
    args.base_resolution = args.base_resolution or 32
  if args.child:
    return child(args)
  if not args.json:
    parser.error("--json is required")
  return parent(args)


if __name__ == "__main__":
  sys.exit(main())
