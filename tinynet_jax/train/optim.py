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

from tinynet_jax.errors import ConfigError
from tinynet_jax.train.config import Duration, ScheduleLengths


def step_decay_schedule(*, base_lr: float, warmup: Duration, warmup_lr: float, decay: Duration,
                        decay_rate: float) -> optax.Schedule:
  """Piecewise-constant LR over whole units of each duration (MindSpore `get_lr`, timm StepLRScheduler).

  With u = step // unit_steps of each duration: ``warmup_lr + u * (base_lr - warmup_lr) / warmup.count`` while
  u < warmup.count, afterwards ``base_lr * decay_rate ** floor(u / decay.count)``. With epochs as the unit this
  is the recipe's per-epoch schedule; with steps it moves every step.
  """
  def schedule(step):
    units = jnp.floor_divide(step, warmup.unit_steps).astype(jnp.float32)
    warm = warmup_lr + units * (base_lr - warmup_lr) / max(warmup.count, 1e-12)
    decay_units = jnp.floor_divide(step, decay.unit_steps).astype(jnp.float32)
    decayed = base_lr * decay_rate ** jnp.floor(decay_units / decay.count)
    return jnp.where(units < warmup.count, warm, decayed)
  return schedule


def lr_at_epoch(epoch: int, *, base_lr: float, warmup_epochs: float, warmup_lr: float, decay_epochs: float,
                decay_rate: float) -> float:
  """The schedule with every duration in epochs (the recipe's form), in plain Python: an independent check."""
  if epoch < warmup_epochs:
    return warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
  return base_lr * decay_rate ** math.floor(epoch / decay_epochs)


def decay_mask(params: Any) -> Any:
  """True for parameters that get weight decay: everything but 1-D tensors (biases, BN affine)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def weight_decay_l2(weight_decay: float) -> optax.GradientTransformation:
  return optax.add_decayed_weights(weight_decay, mask=decay_mask) if weight_decay else optax.identity()


def rmsprop_tf(learning_rate: optax.ScalarOrSchedule, *, decay: float = 0.9, momentum: float = 0.9,
               eps: float = 1e-3, weight_decay: float = 0.0, flat: bool = False) -> optax.GradientTransformation:
  """`flat`: the RMSProp update on one vector of all parameters (`flat_updates`); the same function."""
  update = [optax.scale_by_rms(decay=decay, eps=eps, initial_scale=1.0, eps_in_sqrt=True),
            optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum, nesterov=False)]
  if flat:
    return optax.chain(weight_decay_l2(weight_decay), flat_updates(optax.chain(*update)))
  return optax.chain(weight_decay_l2(weight_decay), *update)


def flat_updates(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` on the raveled parameter vector: one update kernel instead of one per parameter, whose XLA:CPU code
  generation is ~12% of a sweep model's train-step compile (docs/performance.md). The weight decay's mask stays
  outside, where it still sees each parameter's rank."""
  return optax.flatten(tx)


def make_optimizer(config, lengths: ScheduleLengths) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer named by ``config.optimizer`` with the recipe's step-decay schedule over `lengths`
  (`tinynet_jax.train.config.schedule_lengths`); ``config.flat_optimizer`` runs its update on one flat vector."""
  base_lr = config.lr * config.batch_size / config.lr_batch_size  # linear scaling with the global batch
  schedule = step_decay_schedule(base_lr=base_lr, warmup=lengths.warmup, warmup_lr=config.warmup_lr,
                                 decay=lengths.decay, decay_rate=config.decay_rate)
  flat = config.get("flat_optimizer", False)  # absent from the configs saved by runs before the field
  if config.optimizer == "rmsprop_tf":
    tx = rmsprop_tf(schedule, decay=config.rms_decay, momentum=config.momentum, eps=config.opt_eps,
                    weight_decay=config.weight_decay, flat=flat)
  elif config.optimizer == "sgd":
    update = optax.sgd(schedule, momentum=config.momentum, nesterov=True)
    tx = optax.chain(weight_decay_l2(config.weight_decay), flat_updates(update) if flat else update)
  else:
    raise ConfigError(f"unknown optimizer {config.optimizer!r} (known: rmsprop_tf, sgd)")
  return tx, schedule
