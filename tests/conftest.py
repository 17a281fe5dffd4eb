"""Shared test setup: small, fast, CPU-only; CLIs run in this process (`cli`) or in a fresh one (`run_module`)."""
import atexit
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Eight fake CPU devices, so the data-parallel code paths run for real in every test (must precede jax import).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One persistent XLA compilation cache per test session, inherited by the CLI subprocesses: the train-loop tests
# run the same programs several times (reference, killed and resumed runs), and XLA:CPU compiles are slow.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="tinynet_jax_xla_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# Triton (loaded by torchvision, hence by timm) segfaults when it loads after TensorFlow, which would kill every
# later test in this process that imports timm; load it first where it is installed.
try:
  import torchvision  # noqa: F401, E402
except ImportError:
  pass

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Minutes-long end-to-end checks of tools that CI does not exercise on every run (the GPU script's CPU smoke run,
# the embedded dataset's resolution gate): run with TINYNET_SLOW_TESTS=1 (docs/performance.md, README).
slow = pytest.mark.skipif(os.environ.get("TINYNET_SLOW_TESTS") != "1",
                          reason="minutes long: set TINYNET_SLOW_TESTS=1 to run it")


def _run_python(*args, cwd=REPO, timeout=300):
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                        timeout=timeout)


def start_python(args, env=None):
  """``python args...`` started in the repo (PYTHONPATH set, `env` added); stdout/stderr piped as text."""
  env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
  return subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def finish(process, timeout=600):
  """(returncode, stdout, stderr) of a started process, waiting at most `timeout` seconds."""
  out, err = process.communicate(timeout=timeout)
  return process.returncode, out, err


@pytest.fixture
def run_python():
  """Runs ``python args...`` in a fresh interpreter; returns the CompletedProcess."""
  return _run_python


@pytest.fixture
def run_module():
  """Runs ``python -m module args...`` in a fresh interpreter; returns the CompletedProcess."""
  return lambda module, *args, **kwargs: _run_python("-m", module, *args, **kwargs)


def _reset_absl_flags():
  """Forgets a previous in-process `python -m tinynet_jax.main`: its parsed flags and the ``--config.x``
  override flags config_flags defined for it (defining one twice is an error)."""
  from absl import flags
  flags.FLAGS.unparse_flags()
  for name in [n for n in flags.FLAGS if n.startswith("config.")]:
    delattr(flags.FLAGS, name)


class CLI:
  """Runs a command line, ``python -m tinynet_jax.<tool> args...`` or ``python launch/sweep.py args...``, and
  returns (exit code, stdout, stderr). ``cli(...)`` runs it in this process: the tool's own entry point under
  ``sys.argv`` in the repo, as the shim calls it (no interpreter start, no jax import, warm caches).
  ``cli.real(...)`` runs it in a fresh interpreter: the process's real exit code and stderr."""

  def __init__(self, capsys, monkeypatch):
    self.capsys, self.monkeypatch = capsys, monkeypatch

  @staticmethod
  def command(target, args):
    args = [str(a) for a in args]
    return ([target, *args] if target.endswith(".py") else ["-m", target, *args])

  def __call__(self, target, *args):
    argv = self.command(target, args)
    if target.endswith(".py"):  # a script: import it from its file, then run its main like its __main__ does
      spec = importlib.util.spec_from_file_location("_cli_script", os.path.join(REPO, target))
      script = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(script)
      from tinynet_jax.tools.cli import run
      entry = lambda: run(script.main, script.PROG)  # noqa: E731
    else:
      tool = importlib.import_module("tinynet_jax.tools." + target.rsplit(".", 1)[-1])
      entry = tool.entry
      argv = [f"python -m {target}", *argv[2:]]
    self.monkeypatch.chdir(REPO)
    self.monkeypatch.setattr(sys, "argv", argv)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)  # main sets the level; absl's app.run adds its handler
    self.capsys.readouterr()
    _reset_absl_flags()
    try:
      code = entry()
    except SystemExit as e:  # argparse and absl's app.run exit
      code = e.code
    finally:
      _reset_absl_flags()
      root.setLevel(level)
      root.handlers[:] = handlers
    out, err = self.capsys.readouterr()
    return code or 0, out, err

  def real(self, target, *args, env=None, timeout=300):
    process = start_python(self.command(target, args), env=env)
    return finish(process, timeout=timeout)


@pytest.fixture
def cli(capsys, monkeypatch):
  return CLI(capsys, monkeypatch)
