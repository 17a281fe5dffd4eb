#!/usr/bin/env python3
"""Lists a sweep's models and the command that trains each (or each shard); --run runs them here, in turn.

    python launch/sweep.py --config=configs/sweep.py --workdir=runs/in100 --dry-run       # one line per model
    python launch/sweep.py --config=configs/sweep.py:demo --workdir=runs/demo --run        # train them here
    python launch/sweep.py --config=configs/sweep.py --workdir=runs/in100 --shards=8 --dry-run
    python launch/sweep.py --config=configs/sweep.py --count                               # for --array=0-(N-1)

Extra ``--config.field=value`` overrides are passed on to every command. Each command is resumable: rerunning
it skips a finished model. The formula models and the analysis run in whichever process finds the sweep
complete, or afterwards with ``python -m tinynet_jax.analyze WORKDIR``.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tinynet_jax.tools.cli import ArgumentParser, parse_config_flags, positive_int, run  # noqa: E402
from tinynet_jax.errors import ConfigError  # noqa: E402

PROG = "python launch/sweep.py"


def load_config(config: str, overrides: list[str]):
  """The config exactly as `python -m tinynet_jax.main` would build it (config_flags, overrides, lock)."""
  from absl import flags
  from ml_collections import config_flags
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True)
  parse_config_flags(values, ["sweep.py", f"--config={config}", *overrides])
  if values.config.get("job") != "sweep":
    raise ConfigError(f"{config} is not a sweep config (its job is {values.config.get('job')!r}, not 'sweep')")
  return values.config


def with_arg(config: str, arg: str) -> str:
  """configs/sweep.py -> configs/sweep.py:index=3; configs/sweep.py:demo -> configs/sweep.py:demo,index=3."""
  return f"{config},{arg}" if ":" in config else f"{config}:{arg}"


def commands(config: str, workdir: str, overrides: list[str], count: int, shards: int | None) -> list[list[str]]:
  base = ["python", "-m", "tinynet_jax.main"]
  if shards:
    return [base + [f"--config={config}", f"--workdir={workdir}", f"--config.shard={i}/{shards}", *overrides]
            for i in range(shards)]
  return [base + [f"--config={with_arg(config, f'index={i}')}", f"--workdir={workdir}", *overrides]
          for i in range(count)]


def main(argv=None) -> int:
  parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="a sweep config, e.g. configs/sweep.py or configs/sweep.py:demo")
  parser.add_argument("--workdir", help="the sweep directory (required except with --count)")
  parser.add_argument("--shards", type=positive_int, help="one command per shard i/N instead of one per model")
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--dry-run", action="store_true", help="print the commands (the default)")
  mode.add_argument("--run", action="store_true", help="run the commands here, one after another")
  mode.add_argument("--count", action="store_true", help="print the number of models and exit")
  args, overrides = parser.parse_known_args(argv)
  bad = [o for o in overrides if not o.startswith("--config.")]
  if bad:
    parser.error(f"unrecognized arguments: {' '.join(bad)} (only --config.field=value overrides pass through)")
  config = load_config(args.config, overrides)
  from tinynet_jax.search.runner import check_sweep_config, make_plan
  check_sweep_config(config, process_count=1, device_count=1)  # the batch's split: checked where each command runs
  plan = make_plan(config)
  if args.count:
    print(len(plan.models))
    return 0
  if not args.workdir:
    parser.error("--workdir is required")
  lines = commands(args.config, args.workdir, overrides, len(plan.models), args.shards)
  if not args.shards:
    for model in plan.models:
      spec = model.spec(plan.base_resolution)
      print(f"# {model.id}: {model.label} (r={model.r:g} d={model.d:g} w={model.w:g}, {spec.resolution} px)")
  for line in lines:
    print(shlex.join(line))
    if args.run:
      code = subprocess.call([sys.executable, *line[1:]], cwd=REPO)
      if code:
        print(f"{PROG}: error: command exited with {code}", file=sys.stderr)
        return code
  return 0


if __name__ == "__main__":
  sys.exit(run(main, PROG))
