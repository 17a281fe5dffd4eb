"""Data parallelism with pmap semantics: the per-device steps mapped by `jax.shard_map` under `jax.jit`.

One 1-D mesh axis 'data' spans every device of every process. The train state is replicated (``P()``), the
batch is split along its first axis (``P('data')``), and the state is donated to the step.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from tinynet_jax.train.steps import AXIS


def make_mesh() -> jax.sharding.Mesh:
  return jax.make_mesh((jax.device_count(),), (AXIS,), axis_types=(jax.sharding.AxisType.Explicit,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def global_batch(mesh, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """Assembles each process's rows into one global array per key, sharded along 'data'."""
  sharding = data_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def shard_step(step_fn: Callable, mesh, *, donate_state: bool, **static) -> Callable:
  """jit(shard_map(step_fn)) with the state replicated and the batch split over 'data'."""
  mapped = jax.shard_map(functools.partial(step_fn, **static), mesh=mesh, in_specs=(P(), P(AXIS)),
                         out_specs=P())
  return jax.jit(mapped, donate_argnums=(0,) if donate_state else ())


def replicate(mesh, tree: Any) -> Any:
  return jax.device_put(tree, replicated(mesh))
