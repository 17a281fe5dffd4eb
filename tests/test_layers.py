"""The package's dependency graph, read from the source (ast, nothing imported): layers point one way, no cycles.

arch (pure Python) <- costs, models <- checkpoints <- train <- search, inference <- tools; data stands beside
models and is the only place TensorFlow is imported (in data/tfdata).
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tinynet_jax"
# Each package may import its own rank and lower ranks only. errors/files are shared leaves.
RANK = {"errors": 0, "files": 0, "arch": 1, "costs": 2, "models": 2, "data": 2, "checkpoints": 3, "train": 4,
        "search": 5, "inference": 5, "tools": 6}
NO_JAX = ("arch", "costs")  # pure Python: the FLOPs CLI and config files start without jax
SHIMS = ("main", "flops", "convert", "formula", "analyze", "predict", "cam", "benchmark")


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    yield name, path


def _imports(path, *, top_level_only=False):
  """(module imported, line) for every `import` in the file (`from x import y` counts as x and x.y)."""
  tree = ast.parse(path.read_text())
  nodes = tree.body if top_level_only else ast.walk(tree)
  for node in nodes:
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, node.lineno
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      yield node.module, node.lineno
      for alias in node.names:
        yield f"{node.module}.{alias.name}", node.lineno


def _layer(module):
  parts = module.split(".")
  if parts[0] != "tinynet_jax" or len(parts) < 2:
    return None
  return parts[1] if parts[1] in RANK else None


def test_layers_point_one_way():
  wrong = []
  for name, path in _modules():
    layer = _layer(name)
    if layer is None:
      assert name in ("tinynet_jax",) + tuple(f"tinynet_jax.{s}" for s in SHIMS), f"{name} belongs to no layer"
      continue
    for imported, line in _imports(path):
      other = _layer(imported)
      if other is not None and RANK[other] > RANK[layer]:
        wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({layer}) imports {imported} ({other})")
  assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("layer", NO_JAX)
def test_pure_python_layers_import_no_jax(layer):
  for path in (PACKAGE / layer).rglob("*.py"):
    for imported, line in _imports(path):
      assert imported.split(".")[0] not in ("jax", "flax", "numpy", "tensorflow", "torch"), f"{path}:{line}"


def test_only_data_tfdata_imports_tensorflow():
  for name, path in _modules():
    for imported, line in _imports(path):
      if imported.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
        assert name == "tinynet_jax.data.tfdata.tfenv", f"{path}:{line} imports {imported}"


def test_data_stands_beside_models():
  for name, path in _modules():
    for imported, line in _imports(path):
      pair = (_layer(name), _layer(imported))
      assert pair not in (("data", "models"), ("models", "data")), f"{path}:{line} imports {imported}"


def test_no_import_cycles():
  """Imports between our modules, function-level ones included (they cannot hide a cycle), form no cycle."""
  known = dict(_modules())
  graph = {}
  for name, path in known.items():
    edges = set()
    for imported, _ in _imports(path):
      if imported in known and imported != name and not name.startswith(imported + "."):
        edges.add(imported)  # a package's __init__ importing its own submodules is not a cycle
    graph[name] = edges
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in graph[node]:
      if state.get(nxt) == "open":
        raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
      if nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = "done"

  for node in graph:
    if node not in state:
      visit(node)


def test_entry_point_shims_are_one_liners():
  """`python -m tinynet_jax.<cli>` works through a shim that only calls the tools module's entry()."""
  for shim in SHIMS:
    path = PACKAGE / f"{shim}.py"
    imported = [m for m, _ in _imports(path)]
    assert f"tinynet_jax.tools.{shim}.entry" in imported, shim
    assert len([line for line in path.read_text().splitlines() if line.strip()]) <= 6, shim
