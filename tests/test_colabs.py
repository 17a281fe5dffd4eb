"""The colab notebooks: outputs stripped in git, and the quickstart executes headless on CPU.

rubiks_cube.ipynb is executed in tests/test_sweep.py on the sweep that test trains (no second sweep here).
"""
import os
from pathlib import Path

import pytest

from conftest import REPO

COLABS = Path(REPO) / "colabs"
NOTEBOOKS = ["quickstart.ipynb", "rubiks_cube.ipynb"]


def execute(name, env=None, timeout=900):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  notebook = nbformat.read(COLABS / name, as_version=4)
  saved = dict(os.environ)
  os.environ.update(env or {})
  os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
  try:
    nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(COLABS)}}).execute()
  finally:
    os.environ.clear()
    os.environ.update(saved)
  return notebook


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_outputs_are_stripped_in_git(name):
  nbformat = pytest.importorskip("nbformat")
  notebook = nbformat.read(COLABS / name, as_version=4)
  code = [c for c in notebook.cells if c.cell_type == "code"]
  assert code and all(not c.outputs and c.execution_count is None for c in code)
  assert "pip" in code[0].source  # the first cell installs the package


def test_quickstart_runs_headless():
  notebook = execute("quickstart.ipynb")
  text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
  assert "tinynet_a" in text and "M MACs" in text and "%" in text  # zoo, formula and predictions printed
  images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
            if "image/png" in o.get("data", {})]
  assert images  # the CAM overlay
