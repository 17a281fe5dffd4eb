"""timm / official TinyNet PyTorch state dicts <-> our Flax variables.

The mapping is a handful of rules because our module names are timm's: ``blocks.S.I.x`` <-> ``blocks_S_I/x``;
conv ``weight`` (O, I, kh, kw) <-> ``kernel`` (kh, kw, I, O) (depthwise (C, 1, k, k) -> (k, k, 1, C) by the same
transpose); linear ``weight`` (O, I) <-> ``kernel`` (I, O); BN ``weight``/``bias``/``running_mean``/``running_var``
<-> ``scale``/``bias``/``mean``/``var``. Import is strict: every missing, unexpected or mis-shaped tensor is
reported (the official ``eval.py`` loads with ``strict=False`` and would silently keep random weights).
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

import numpy as np
from flax import traverse_util

from tinynet_jax.checkpoints import formats
from tinynet_jax.errors import CheckpointError

_BLOCK = re.compile(r"^blocks_(\d+)_(\d+)$")
_LEAF_NAMES = {("params", "kernel"): "weight", ("params", "bias"): "bias", ("params", "scale"): "weight",
               ("batch_stats", "mean"): "running_mean", ("batch_stats", "var"): "running_var"}
IGNORED_SUFFIXES = (".num_batches_tracked",)


def timm_key(path: tuple[str, ...]) -> str:
  """('params', 'blocks_1_0', 'se', 'conv_reduce', 'kernel') -> 'blocks.1.0.se.conv_reduce.weight'."""
  collection, *modules, leaf = path
  names = []
  for module in modules:
    match = _BLOCK.match(module)
    names.extend(["blocks", match.group(1), match.group(2)] if match else [module])
  return ".".join(names + [_LEAF_NAMES[(collection, leaf)]])


# PyTorch layout -> ours: conv (O, I, kh, kw) -> (kh, kw, I, O); linear (O, I) -> (I, O).
_TO_FLAX = {4: (2, 3, 1, 0), 2: (1, 0)}
_TO_TORCH = {ndim: tuple(np.argsort(perm)) for ndim, perm in _TO_FLAX.items()}


def _to_flax(array: np.ndarray) -> np.ndarray:
  return array.transpose(_TO_FLAX[array.ndim]) if array.ndim in _TO_FLAX else array


def _to_torch(array: np.ndarray) -> np.ndarray:
  return array.transpose(_TO_TORCH[array.ndim]) if array.ndim in _TO_TORCH else array


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(shape[i] for i in _TO_TORCH[len(shape)]) if len(shape) in _TO_TORCH else tuple(shape)


def import_state_dict(state_dict: Mapping[str, Any], target: Mapping[str, Any], *,
                      key: Callable[[tuple[str, ...]], str] = timm_key) -> dict[str, Any]:
  """Converts a timm state dict into variables shaped like `target` (e.g. `jax.eval_shape` of model.init).

  `key` names each variable in the source (default timm's names; `mindspore_port.mindspore_key` for the official
  MindSpore model's), so that every problem is reported under the source's own names.

  Raises:
    CheckpointError: listing every missing, unexpected and mis-shaped tensor.
  """
  expected = {key(path): (path, tuple(leaf.shape))
              for path, leaf in traverse_util.flatten_dict(dict(target)).items()}
  given = {k: v for k, v in state_dict.items() if not k.endswith(IGNORED_SUFFIXES)}
  missing = expected.keys() - given.keys()
  unexpected = given.keys() - expected.keys()
  converted, mismatched = {}, []
  for name in expected.keys() & given.keys():
    path, shape = expected[name]
    array = _to_flax(np.asarray(given[name], dtype=np.float32))
    if array.shape != shape:
      mismatched.append(f"{name} {tuple(np.shape(given[name]))} (model needs {_torch_shape(shape)})")
    converted[path] = array
  problems = []
  if missing:
    problems.append(f"missing {len(missing)}: {', '.join(sorted(missing))}")
  if unexpected:
    problems.append(f"unexpected {len(unexpected)}: {', '.join(sorted(unexpected))}")
  if mismatched:
    problems.append(f"wrong shape {len(mismatched)}: {', '.join(sorted(mismatched))}")
  if problems:
    raise CheckpointError("checkpoint does not match the model: " + "; ".join(problems))
  return traverse_util.unflatten_dict(converted)


def export_state_dict(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Our variables as a timm state dict of numpy arrays (the inverse of `import_state_dict`)."""
  return {timm_key(path): np.ascontiguousarray(_to_torch(np.asarray(leaf)))
          for path, leaf in traverse_util.flatten_dict(dict(variables)).items()}


def read_state_dict(path: str | os.PathLike, use_ema: bool = False) -> dict[str, np.ndarray]:
  """Reads a ``.safetensors`` (no torch needed) or ``.pth``/``.pt``/``.bin`` (needs torch) state dict.

  Training checkpoints that wrap the weights (``{'state_dict': ...}``, ``{'model': ...}``, timm's
  ``state_dict_ema`` with `use_ema`) are unwrapped and a DataParallel ``module.`` prefix is stripped.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise CheckpointError(f"no checkpoint file at {path}")
  kind = formats.sniff(path)  # by content: a Lightning-style .ckpt is torch.save's, a MindSpore .ckpt is not
  if kind == formats.MINDSPORE:
    raise CheckpointError(f"{path} is {formats.DESCRIPTIONS[kind]}, not a PyTorch/timm state dict")
  if path.endswith(".safetensors") or kind == formats.SAFETENSORS:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
      tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
      raise CheckpointError(f"cannot read {path} as safetensors: {e}") from None
  else:
    if kind != formats.PYTORCH:
      raise CheckpointError(f"{path} is not a PyTorch checkpoint (expected torch.save's zip or pickle format, "
                            "or .safetensors)")
    try:
      import torch
    except ImportError:
      raise CheckpointError(f"reading {path} needs PyTorch (pip install torch), or convert it to "
                            ".safetensors first") from None
    try:
      tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or non-checkpoint files
      raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {type(e).__name__}: {e}") from None
  wrappers = (("state_dict_ema",) if use_ema else ()) + ("state_dict", "model")
  for key in wrappers:
    if isinstance(tensors, dict) and isinstance(tensors.get(key), dict):
      tensors = tensors[key]
      break
  else:
    if use_ema:
      raise CheckpointError(f"{path} has no 'state_dict_ema' entry")
  if not isinstance(tensors, dict):
    raise CheckpointError(f"{path} does not hold a state dict")
  result = {}
  for key, value in tensors.items():
    key = key[len("module."):] if key.startswith("module.") else key
    if hasattr(value, "detach"):  # a torch tensor (any dtype, e.g. fp16 releases)
      value = value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
    result[key] = np.asarray(value)
  return result
