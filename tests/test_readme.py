"""The README's claims that are numbers: its zoo table must be what `python -m tinynet_jax.flops` prints."""
import os
import re

from tinynet_jax.tools.flops import zoo_rows

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def test_readme_zoo_table_matches_the_counters():
  text = open(README).read()
  table = {}
  for line in text.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 11 and re.fullmatch(r"(tinynet|efficientnet)_[\w-]+", cells[0]):
      table[cells[0]] = cells
  rows = zoo_rows()
  assert set(table) == {row["model"] for row in rows}
  for row in rows:
    cells = table[row["model"]]
    assert cells[5] == str(row["resolution"])
    assert cells[6] == f"{row['params']:,}"
    assert cells[7] == f"{row['macs'] / 1e6:.1f}M"


def test_readme_quickstart_commands_are_what_ci_runs():
  text = open(README).read()
  ci = open(os.path.join(os.path.dirname(README), ".ci", "run")).read()
  test_command = ci.strip().splitlines()[-1]  # the last line of .ci/run runs the tests
  assert test_command == "pip install -r requirements.txt && python -m pytest -q -n 2 --dist loadfile --durations=15"
  assert test_command in text
  assert ("pip install -e .[data] && python -m tinynet_jax.main --config=configs/sweep.py:demo "
          "--workdir=runs/demo") in text
