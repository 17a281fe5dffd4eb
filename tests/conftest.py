"""Shared test setup: small, fast, CPU-only."""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run_module():
  """Runs ``python -m module args...`` in a subprocess; returns the CompletedProcess."""
  import subprocess

  def run(module, *args, **kwargs):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=kwargs.pop("cwd", REPO), timeout=kwargs.pop("timeout", 300), **kwargs)
  return run
