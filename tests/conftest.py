"""Shared test setup: small, fast, CPU-only."""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_python(*args, cwd=REPO, timeout=300):
  import subprocess
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                        timeout=timeout)


@pytest.fixture
def run_python():
  """Runs ``python args...`` in a fresh interpreter; returns the CompletedProcess."""
  return _run_python


@pytest.fixture
def run_module():
  """Runs ``python -m module args...`` in a fresh interpreter; returns the CompletedProcess."""
  return lambda module, *args, **kwargs: _run_python("-m", module, *args, **kwargs)
