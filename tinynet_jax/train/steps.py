"""Per-device train and eval steps with pmap semantics: explicit collectives over the 'data' axis.

`tinynet_jax.train.parallel` maps them over every device of every process with `jax.shard_map` under `jax.jit`
(what `jax.pmap` itself compiles to today).
"""
# No `from __future__ import annotations` here: clu reads the metric classes from the annotations.

import functools

import flax.struct
import jax
import jax.numpy as jnp
import optax
from clu import metrics as clu_metrics

from tinynet_jax.data import ondevice
from tinynet_jax.train.parallel import AXIS
from tinynet_jax.train.state import TrainState, ema_update


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  accuracy: clu_metrics.Average.from_output("accuracy")
  finite: clu_metrics.Average.from_output("finite")  # 1.0 while every replica's loss is finite


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  top1: clu_metrics.Average.from_output("top1")
  top5: clu_metrics.Average.from_output("top5")
  ema_top1: clu_metrics.Average.from_output("ema_top1")
  ema_top5: clu_metrics.Average.from_output("ema_top5")


def _global_average(values: jax.Array, mask: jax.Array | None = None) -> clu_metrics.Average:
  """An exact average over the global batch: sums and counts psum'd over the 'data' axis."""
  values = values.astype(jnp.float32)
  mask = jnp.ones_like(values) if mask is None else mask.astype(jnp.float32)
  return clu_metrics.Average(total=jax.lax.psum(jnp.sum(values * mask), AXIS),
                             count=jax.lax.psum(jnp.sum(mask), AXIS))


def smooth_labels(labels: jax.Array, num_classes: int, smoothing: float, exclusive: bool) -> jax.Array:
  """One-hot targets with label smoothing.

  `exclusive` is the MindSpore form of the official trainer (true class 1 - s, others s / (K - 1)); otherwise
  timm's (true class 1 - s + s / K, others s / K).
  """
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if not smoothing:
    return onehot
  if exclusive:
    return onehot * (1.0 - smoothing) + (1.0 - onehot) * smoothing / (num_classes - 1)
  return onehot * (1.0 - smoothing) + smoothing / num_classes


def train_step(state: TrainState, batch: dict, keys: dict, *, model, tx: optax.GradientTransformation,
               num_classes: int, label_smoothing: float, exclusive_smoothing: bool,
               ema_decay: float, ema_warmup: bool = False) -> tuple[TrainState, TrainMetrics]:
  """One optimisation step on this replica's shard of the global batch.

  Randomness (dropout, drop path) comes from ``keys['dropout']`` folded with the step and the replica index, so
  a run resumed from a checkpoint redraws exactly the same masks. The keys are an argument, not constants, so
  every seed of a network runs one compiled program (`parallel.shard_step`).
  """
  step_rng = jax.random.fold_in(jax.random.fold_in(keys["dropout"], state.step), jax.lax.axis_index(AXIS))
  targets = smooth_labels(batch["label"], num_classes, label_smoothing, exclusive_smoothing)

  def loss_fn(params):
    logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, batch["image"],
                                  train=True, mutable=["batch_stats"], rngs={"dropout": step_rng})
    losses = optax.softmax_cross_entropy(logits, targets)
    return losses.mean(), (losses, logits, updates["batch_stats"])

  # pmap semantics: each replica differentiates its own copy of the (replicated) params, so its gradient is
  # local, and the cross-replica mean is the explicit pmean below. (Differentiating the replicated params
  # directly would make shard_map psum the gradient implicitly.)
  local_params = jax.lax.pcast(state.params, AXIS, to="varying")
  (_, (losses, logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(local_params)
  grads = jax.lax.pmean(grads, AXIS)
  # Per-replica BN normalises with local statistics; averaging the running estimates keeps the replicated
  # state identical on every replica (with cross-replica BN they are equal already and this is a no-op).
  batch_stats = jax.lax.pmean(batch_stats, AXIS)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if ema_warmup:  # TF ExponentialMovingAverage(num_updates): short runs do not average in the random init
    ema_decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
  new_state = state.replace(
      step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
      ema_params=ema_update(state.ema_params, params, ema_decay),
      ema_batch_stats=ema_update(state.ema_batch_stats, batch_stats, ema_decay))
  metrics = TrainMetrics.empty().replace(loss=_global_average(losses),
                                         accuracy=_global_average(jnp.argmax(logits, -1) == batch["label"]),
                                         finite=_global_average(jnp.isfinite(losses).all()[None]))
  return new_state, metrics


def resident_train_step(state: TrainState, batch: dict, dataset: dict, keys: dict, *, augment, resolution: int,
                        **kwargs) -> tuple[TrainState, TrainMetrics]:
  """`train_step` on rows of a device-resident dataset, gathered and augmented inside the step.

  `batch` holds this replica's example indices and global positions; `dataset` the whole uint8 train split
  (replicated); the augmentation of a row depends only on ``keys['augment']`` and its position.
  """
  images = ondevice.augment_batch(dataset["image"][batch["index"]], batch["position"], keys["augment"],
                                  augment=augment, resolution=resolution)
  return train_step(state, {"image": images, "label": dataset["label"][batch["index"]]}, keys, **kwargs)


def _topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  _, top = jax.lax.top_k(logits, k)
  return jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)


def eval_step(state: TrainState, batch: dict, *, model, num_classes: int) -> EvalMetrics:
  """Top-1/top-5 of the raw and the EMA weights; padded examples (mask 0) do not count."""
  labels, mask = batch["label"], batch["mask"]
  apply = functools.partial(model.apply, train=False)
  logits = apply(state.variables, batch["image"])
  ema_logits = apply(state.ema_variables, batch["image"])
  k = min(5, num_classes)
  loss = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, num_classes))
  return EvalMetrics.empty().replace(
      loss=_global_average(loss, mask), top1=_global_average(_topk_correct(logits, labels, 1), mask),
      top5=_global_average(_topk_correct(logits, labels, k), mask),
      ema_top1=_global_average(_topk_correct(ema_logits, labels, 1), mask),
      ema_top5=_global_average(_topk_correct(ema_logits, labels, k), mask))
