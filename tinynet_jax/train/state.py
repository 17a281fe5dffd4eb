"""The training state: one pytree that is checkpointed whole, so a resumed run continues bit for bit."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: optax.OptState
  ema_params: Any  # exponential moving averages of params and of BN statistics (EMA 0.9999 in the recipe)
  ema_batch_stats: Any

  @property
  def variables(self):
    return {"params": self.params, "batch_stats": self.batch_stats}

  @property
  def ema_variables(self):
    return {"params": self.ema_params, "batch_stats": self.ema_batch_stats}


def create_state(variables: dict, tx: optax.GradientTransformation) -> TrainState:
  params, batch_stats = variables["params"], variables.get("batch_stats", {})
  copy = lambda tree: jax.tree.map(jnp.array, tree)  # noqa: E731  (EMA must not alias donated buffers)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), ema_params=copy(params), ema_batch_stats=copy(batch_stats))


def ema_update(ema: Any, new: Any, decay: float) -> Any:
  return jax.tree.map(lambda e, n: decay * e + (1.0 - decay) * n, ema, new)
