"""Entry point: ``python -m tinynet_jax.main --config=configs/train.py:model=tinynet_a,dataset=imagenet2012
--workdir=DIR [--config.field=value ...]``.

All logic lives in importable libraries (`tinynet_jax.train.train_and_evaluate`); this file parses flags,
starts multi-process JAX when asked, and turns user errors into one line with exit code 2.
"""
from __future__ import annotations

import logging
import os
import sys

import jax
from absl import app, flags
from ml_collections import config_flags

from tinynet_jax.tools.cli import USAGE_ERROR, parse_config_flags
from tinynet_jax.errors import ConfigError, TinynetError
from tinynet_jax.inference.evaluate import evaluate_checkpoint
from tinynet_jax.search.runner import run_sweep
from tinynet_jax.tools.analyze import print_summary
from tinynet_jax.train import train_and_evaluate

PROG = "python -m tinynet_jax.main"
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "config file (configs/*.py[:arg])", lock_config=True)
flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and results")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-process runs")
flags.DEFINE_integer("num_processes", None, "number of processes, for multi-process runs")
flags.DEFINE_integer("process_id", None, "this process's index, for multi-process runs")


def _fail(message: str) -> None:
  print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(USAGE_ERROR)


def parse_flags(argv):
  try:
    rest = parse_config_flags(FLAGS, argv)
  except TinynetError as e:  # a config problem, or raised by a config file's get_config(arg)
    _fail(e)
  if FLAGS.config is None:
    _fail("--config is required, e.g. --config=configs/train.py:model=tinynet_e,dataset=digits")
  if not FLAGS.workdir:
    _fail("--workdir is required")
  if len(rest) > 1:
    _fail(f"unexpected arguments: {' '.join(rest[1:])}")
  return rest


def _init_distributed() -> None:
  """jax.distributed for multi-process runs: explicit flags, or the cluster's environment (SLURM, TPU pods)."""
  explicit = FLAGS.coordinator_address is not None
  if explicit or os.environ.get("TINYNET_DISTRIBUTED") == "1":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over gloo
    kwargs = {}
    if explicit:
      kwargs = dict(coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
                    process_id=FLAGS.process_id)
    jax.distributed.initialize(**kwargs)


def run_job(config, workdir: str) -> dict:
  """Runs the job the config names in its `job` field: train one network, a sweep, or an evaluation."""
  if config.job == "train":
    logging.getLogger().setLevel(logging.INFO)
    return train_and_evaluate(config, workdir)
  if config.job == "sweep":  # configs/sweep.py: the Rubik's cube search
    logging.getLogger().setLevel(logging.WARNING)  # one progress line per model instead of each run's log
    result = run_sweep(config, workdir)
    if result.get("complete") and "report" in result:
      print_summary(result)
    return result
  if config.job == "eval":  # configs/eval.py: evaluate a checkpoint
    result = evaluate_checkpoint(config, workdir)
    print(f"{result['model']} on {result['dataset']} ({result['examples']} images, {result['resolution']} px): "
          f"top-1 {result['top1']:.2%}, top-5 {result['top5']:.2%}")
    return result
  raise ConfigError(f"config.job must be train, sweep or eval, got {config.job!r}")


def main(argv) -> int:
  del argv
  if "job" not in FLAGS.config:
    _fail("the config has no 'job' field (train, sweep or eval); build it on configs/train.py, sweep.py or eval.py")
  _init_distributed()
  try:
    result = run_job(FLAGS.config, FLAGS.workdir)
  except TinynetError as e:
    _fail(e)
  if result.get("preempted"):
    logging.warning("stopped by SIGTERM; rerun the same command to resume")
  return 0


def entry() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  entry()
