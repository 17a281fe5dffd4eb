"""tinynet_jax: TinyNets ("Model Rubik's Cube", Han et al., NeurIPS 2020) in JAX/Flax.

    import tinynet_jax
    spec = tinynet_jax.model_spec("tinynet_a")        # or model_spec(r=0.7, d=0.9, w=0.6)
    model = tinynet_jax.create_model(spec, num_classes=1000)
    tinynet_jax.count_params(spec), tinynet_jax.count_macs(spec)
    model, variables, spec = tinynet_jax.load(checkpoint_dir)

Attributes are imported lazily so that the pure-Python parts (specs, counters, `python -m tinynet_jax.flops`)
start without importing jax.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ModelSpec": "tinynet_jax.arch", "ZOO": "tinynet_jax.arch", "build_spec": "tinynet_jax.arch",
    "model_spec": "tinynet_jax.arch", "giant_formula": "tinynet_jax.arch",
    "count_macs": "tinynet_jax.costs", "count_params": "tinynet_jax.costs", "layer_costs": "tinynet_jax.costs",
    "stage_costs": "tinynet_jax.costs", "solve_width": "tinynet_jax.costs", "solve_phi": "tinynet_jax.costs",
    "EfficientNet": "tinynet_jax.models", "create_model": "tinynet_jax.models",
    "load": "tinynet_jax.inference", "save": "tinynet_jax.checkpoints",
    "TinynetError": "tinynet_jax.errors", "SpecError": "tinynet_jax.errors",
    "CheckpointError": "tinynet_jax.errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'tinynet_jax' has no attribute {name!r}")


def __dir__():
  return __all__
