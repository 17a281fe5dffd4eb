r"""glibc's default malloc against the tuning `python -m tinynet_jax.main` applies (tinynet_jax/tools/allocator.py).

    python benchmarks/malloc_tuning.py            # two demo networks (25 and 29 px), each compiled and trained
    python benchmarks/malloc_tuning.py --repeat 2

Each variant runs in its own fresh process (the tunables are read at process start): the demo sweep's training
config (digit_mosaic, data on the device, 150 steps of 64) for two of its networks, one after the other, as the
sweep trains them. Prints wall, user and system CPU seconds and minor page faults per variant and the ratios of the
tuned run to the default in the same invocation.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tinynet_jax.tools.allocator import TUNABLES, on_glibc  # noqa: E402

NETWORKS = ((0.782, 0.489, 0.646), (0.934, 0.69, 0.3))  # L0.25-000 and L0.125-000 of the demo's plan
DRIVER = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("sweep_config", sys.argv[1] + "/configs/sweep.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from tinynet_jax.train.loop import train_and_evaluate
config = module.get_config("demo").train
for i, (r, d, w) in enumerate(eval(sys.argv[3])):
  config.r, config.d, config.w = r, d, w
  train_and_evaluate(config, f"{sys.argv[2]}/{i}")
"""


def run(tuned: bool, workdir: str) -> dict[str, float]:
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  if tuned:
    env["GLIBC_TUNABLES"] = TUNABLES
  env.setdefault("JAX_PLATFORMS", "cpu")
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.time()
  subprocess.run([sys.executable, "-c", DRIVER, REPO, workdir, repr(NETWORKS)], env=env, check=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  return {"wall": time.time() - start, "user": after.ru_utime - before.ru_utime,
          "system": after.ru_stime - before.ru_stime, "faults": after.ru_minflt - before.ru_minflt}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeat", type=int, default=1, help="runs of each variant, alternating")
  args = parser.parse_args(argv)
  if not on_glibc():
    print("not glibc: the tuning does not apply here", file=sys.stderr)
    return 2
  results = {"default": [], "tuned": []}
  with tempfile.TemporaryDirectory() as tmp:
    for repeat in range(args.repeat):
      for name in results:
        results[name].append(run(name == "tuned", os.path.join(tmp, f"{name}{repeat}")))
  print(f"{'malloc':8} {'wall s':>8} {'user s':>8} {'system s':>9} {'minor faults':>13}")
  for name, runs in results.items():
    for r in runs:
      print(f"{name:8} {r['wall']:8.1f} {r['user']:8.1f} {r['system']:9.1f} {r['faults']:13,d}")
  mean = {name: {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]} for name, runs in results.items()}
  print("tuned / default: " + ", ".join(f"{k} {mean['tuned'][k] / max(mean['default'][k], 1e-9):.2f}x"
                                        for k in ("wall", "user", "system", "faults")))
  return 0


if __name__ == "__main__":
  sys.exit(main())
