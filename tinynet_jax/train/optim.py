"""Optimizer and learning-rate schedule of the paper's recipe, built from optax pieces.

RMSProp with TensorFlow semantics (as the official MindSpore trainer and timm's RMSpropTF): the mean square
starts at 1, epsilon sits inside the square root, and the learning rate is applied before momentum (folded into
the momentum buffer). Weight decay is an L2 term added to the gradient (not decoupled), skipped for 1-D
parameters (biases, BN scales and offsets).
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax


def step_decay_schedule(*, base_lr: float, steps_per_epoch: int, warmup_epochs: float, warmup_lr: float,
                        decay_epochs: float, decay_rate: float) -> optax.Schedule:
  """Per-epoch piecewise-constant LR (MindSpore `get_lr`, timm StepLRScheduler with per-epoch updates).

  Epoch e < warmup: ``warmup_lr + e * (base_lr - warmup_lr) / warmup_epochs``;
  afterwards ``base_lr * decay_rate ** floor(e / decay_epochs)``.
  """
  def schedule(step):
    epoch = jnp.floor_divide(step, steps_per_epoch).astype(jnp.float32)
    warm = warmup_lr + epoch * (base_lr - warmup_lr) / max(warmup_epochs, 1e-12)
    decayed = base_lr * decay_rate ** jnp.floor(epoch / decay_epochs)
    return jnp.where(epoch < warmup_epochs, warm, decayed)
  return schedule


def lr_at_epoch(epoch: int, *, base_lr: float, warmup_epochs: float, warmup_lr: float, decay_epochs: float,
                decay_rate: float) -> float:
  """The same schedule in plain Python, for reports and tests."""
  if epoch < warmup_epochs:
    return warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
  return base_lr * decay_rate ** math.floor(epoch / decay_epochs)


def decay_mask(params: Any) -> Any:
  """True for parameters that get weight decay: everything but 1-D tensors (biases, BN affine)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def rmsprop_tf(learning_rate: optax.ScalarOrSchedule, *, decay: float = 0.9, momentum: float = 0.9,
               eps: float = 1e-3, weight_decay: float = 0.0) -> optax.GradientTransformation:
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask=decay_mask) if weight_decay else optax.identity(),
      optax.scale_by_rms(decay=decay, eps=eps, initial_scale=1.0, eps_in_sqrt=True),
      optax.scale_by_learning_rate(learning_rate),
      optax.trace(decay=momentum, nesterov=False),
  )


def make_optimizer(config, steps_per_epoch: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer named by ``config.optimizer`` with the recipe's step-decay schedule."""
  base_lr = config.lr_per_1024 * config.batch_size / 1024  # linear scaling with the global batch
  schedule = step_decay_schedule(base_lr=base_lr, steps_per_epoch=steps_per_epoch,
                                 warmup_epochs=config.warmup_epochs, warmup_lr=config.warmup_lr,
                                 decay_epochs=config.decay_epochs, decay_rate=config.decay_rate)
  if config.optimizer == "rmsprop_tf":
    tx = rmsprop_tf(schedule, decay=config.rms_decay, momentum=config.momentum, eps=config.opt_eps,
                    weight_decay=config.weight_decay)
  elif config.optimizer == "sgd":
    tx = optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask) if config.weight_decay
        else optax.identity(),
        optax.sgd(schedule, momentum=config.momentum, nesterov=True))
  else:
    from tinynet_jax.errors import ConfigError
    raise ConfigError(f"unknown optimizer {config.optimizer!r} (known: rmsprop_tf, sgd)")
  return tx, schedule
