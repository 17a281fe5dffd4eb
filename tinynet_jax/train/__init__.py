"""The training engine: recipes, the data-parallel step, checkpoints, metrics.

`train_and_evaluate` is imported lazily so that config files (which import `tinynet_jax.train.config`) load
without jax.
"""


def __getattr__(name):
  if name in ("train_and_evaluate", "compile_for", "NonFiniteLossError"):
    from tinynet_jax.train import loop
    return getattr(loop, name)
  raise AttributeError(f"module 'tinynet_jax.train' has no attribute {name!r}")
