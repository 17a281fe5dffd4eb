"""Entry point: ``python -m tinynet_jax.main --config=configs/train.py:model=tinynet_a,dataset=imagenet2012
--workdir=DIR [--config.field=value ...]``.

All logic lives in importable libraries (`tinynet_jax.train.train_and_evaluate`); this file parses flags,
starts multi-process JAX when asked, and turns user errors into one line with exit code 2.
"""
from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from tinynet_jax.tools.cli import USAGE_ERROR
from tinynet_jax.errors import TinynetError

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


def flag_error_message(error: flags.Error) -> str:
  """config_flags re-raises a get_config() error with its traceback in the text: keep the error's own line."""
  text = str(error)
  if "Traceback (most recent call last)" not in text:
    return text
  last = text.strip().splitlines()[-1]
  kind, sep, message = last.partition(": ")
  return f"--config: {message}" if sep and "Error" in kind else last


def unknown_field_message(error: Exception) -> str:
  """ConfigDict's KeyError (possibly wrapped in AttributeError) -> 'unknown config field x; Did you mean y?'."""
  details = []
  while isinstance(error, (AttributeError, KeyError)):
    if error.args and isinstance(error.args[0], str):
      details.append(error.args[0])
    error = error.__context__
  detail = next((d for d in details if "\n" in d), details[-1] if details else "")
  name, _, hint = detail.partition("\n")
  return f"unknown config field {name}{'; ' + hint if hint else ''}"


def config_load_error(config) -> str | None:
  """The one-line error of a --config file that failed to load, else None. config_flags hands back a stand-in
  that raises OSError on first use; its last line names the cause ("[Errno 2] No such file ...: 'x.py'")."""
  try:
    config.get("")
  except OSError as e:
    return f"--config: cannot load the config file: {str(e).strip().splitlines()[-1].strip()}"
  return None


def parse_flags(argv):
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    _fail(flag_error_message(e))
  except TinynetError as e:  # raised by a config file's get_config(arg)
    _fail(e)
  except (AttributeError, KeyError) as e:  # --config.no_such_field=...
    _fail(unknown_field_message(e))
  if FLAGS.config is not None and config_load_error(FLAGS.config):
    _fail(config_load_error(FLAGS.config))
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
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over gloo
    kwargs = {}
    if explicit:
      kwargs = dict(coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
                    process_id=FLAGS.process_id)
    jax.distributed.initialize(**kwargs)


def _print_sweep_summary(summary: dict) -> None:
  print(f"report: {summary['report']}")
  print(f"formula: {summary['formula_path']} (frontier: {', '.join(summary['frontier'])})")
  for row in summary["formula"]:
    print(f"  {row['budget_macs'] / 1e6:8.2f}M MACs -> r={row['r']:.3f} d={row['d']:.3f} w={row['w']:g} "
          f"({row['resolution']} px, {row['macs'] / 1e6:.2f}M MACs, {row['params']:,} params)")


def main(argv) -> int:
  del argv
  _init_distributed()
  try:
    if FLAGS.config.get("mode") == "eval":  # configs/eval.py: evaluate a checkpoint
      from tinynet_jax.inference.evaluate import evaluate_checkpoint
      result = evaluate_checkpoint(FLAGS.config, FLAGS.workdir)
      print(f"{result['model']} on {result['dataset']} ({result['examples']} images, {result['resolution']} px): "
            f"top-1 {result['top1']:.2%}, top-5 {result['top5']:.2%}")
    elif "sweep" in FLAGS.config:  # configs/sweep.py: the Rubik's cube search
      logging.getLogger().setLevel(logging.WARNING)  # one progress line per model instead of each run's log
      from tinynet_jax.search.runner import run_sweep
      result = run_sweep(FLAGS.config, FLAGS.workdir)
      if result.get("complete") and "report" in result:
        _print_sweep_summary(result)
    else:
      logging.getLogger().setLevel(logging.INFO)
      from tinynet_jax.train import train_and_evaluate
      result = train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except TinynetError as e:
    _fail(e)
  if result.get("preempted"):
    logging.warning("stopped by SIGTERM; rerun the same command to resume")
  return 0


def entry() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  entry()
