"""Shared test setup: small, fast, CPU-only."""
import atexit
import os
import shutil
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

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_python(*args, cwd=REPO, timeout=300):
  import subprocess
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                        timeout=timeout)


def start_python(args, env=None):
  """``python args...`` started in the repo (PYTHONPATH set, `env` added); stdout/stderr piped as text."""
  import subprocess
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
