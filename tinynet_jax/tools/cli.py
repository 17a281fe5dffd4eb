"""What every command-line tool shares: model-selection flags, config-flag parsing, one-line errors with exit 2."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Sequence

from tinynet_jax.errors import ConfigError, TinynetError
from tinynet_jax.arch import BASE_RESOLUTION, RULES, ModelSpec, model_spec

USAGE_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
  """argparse that reports a usage error on one line (no usage dump) and exits 2."""

  def error(self, message: str):
    self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def finite_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
  if not math.isfinite(value):
    raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
  return value


def positive_float(text: str) -> float:
  try:
    value = finite_float(text)
  except argparse.ArgumentTypeError:
    value = None
  if value is None or value <= 0:
    raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
  return value


def positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
  if value <= 0:
    raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
  return value


def add_model_args(parser: argparse.ArgumentParser) -> None:
  """--model NAME | --r/--d/--w [--rules] | --phi, plus --resolution / --base-resolution."""
  group = parser.add_argument_group("model (a zoo name, or a point of the (r, d, w) cube)")
  group.add_argument("--model", help="zoo name, e.g. tinynet_a or efficientnet_b0")
  group.add_argument("--r", type=positive_float, help="resolution multiplier (input = int(base * r))")
  group.add_argument("--d", type=positive_float, help="depth multiplier (blocks per stage)")
  group.add_argument("--w", type=positive_float, help="width multiplier (channels)")
  group.add_argument("--rules", choices=sorted(RULES), help="scaling rules for --r/--d/--w (default tinynet)")
  group.add_argument("--phi", type=finite_float, help="inverse giant formula: d=1.2^phi, w=1.1^phi, r=1.15^phi")
  group.add_argument("--resolution", type=positive_int, help="input size override (pixels)")
  group.add_argument("--base-resolution", type=positive_int, default=BASE_RESOLUTION,
                     help="base input size that r multiplies (default %(default)s)")


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
  return model_spec(args.model, r=args.r, d=args.d, w=args.w, rules=args.rules, phi=args.phi,
                    base_resolution=args.base_resolution, resolution=args.resolution)


def run(main: Callable[[Sequence[str] | None], int | None], prog: str,
        argv: Sequence[str] | None = None) -> int:
  """Runs a CLI main; user errors (`TinynetError`) become ``prog: error: ...`` and exit code 2."""
  try:
    return main(argv) or 0
  except TinynetError as e:
    message = " ".join(str(e).split())  # exactly one line
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


# --config (ml_collections config_flags under absl): python -m tinynet_jax.main and launch/sweep.py.

def flag_error_message(error: Exception) -> str:
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


def parse_config_flags(flag_values, argv: Sequence[str]) -> list[str]:
  """Parses absl `flag_values` holding a config_flags ``--config``; every config problem (bad flag, unknown
  field, unloadable file) becomes a one-line `ConfigError`. Errors a config file's get_config raises pass."""
  from absl import flags
  try:
    rest = flag_values(list(argv))
  except flags.Error as e:
    raise ConfigError(flag_error_message(e)) from None
  except (AttributeError, KeyError) as e:  # --config.no_such_field=...
    raise ConfigError(unknown_field_message(e)) from None
  if flag_values["config"].value is not None:
    message = config_load_error(flag_values["config"].value)
    if message:
      raise ConfigError(message)
  return rest
