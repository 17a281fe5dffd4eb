"""Layers with timm's exact semantics: symmetric padding, PyTorch BatchNorm constants, Google-style init."""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch BatchNorm2d defaults used by the official models: momentum 0.1 (Flax keeps 1 - 0.1), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_kernel_init(groups: int = 1) -> jax.nn.initializers.Initializer:
  """N(0, sqrt(2 / fan_out)) with fan_out = kh * kw * out / groups (timm `_init_weight_goog`).

  Flax's variance_scaling would count a depthwise kernel's fan_out as kh * kw * channels; timm's is kh * kw.
  """
  def init(key, shape, dtype=jnp.float32):
    kh, kw, _, out = shape
    std = math.sqrt(2.0 / (kh * kw * out // groups))
    return std * jax.random.normal(key, shape, dtype)
  return init


def dense_kernel_init(key, shape, dtype=jnp.float32):
  """U(-1/sqrt(fan_out), 1/sqrt(fan_out)) as timm initialises the classifier."""
  bound = 1.0 / math.sqrt(shape[-1])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def symmetric_padding(kernel: int, stride: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """PyTorch-style ``((stride - 1) + (kernel - 1)) // 2`` on both sides; 'SAME' would pad k3/s2 as (0, 1)."""
  pad = ((stride - 1) + (kernel - 1)) // 2
  return ((pad, pad), (pad, pad))


def conv(features: int, kernel: int = 1, stride: int = 1, groups: int = 1, use_bias: bool = False,
         dtype: Any = jnp.float32, name: str | None = None) -> nn.Conv:
  """A square conv with symmetric padding, float32 params and a configurable compute dtype."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=symmetric_padding(kernel, stride),
                 feature_group_count=groups, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                 kernel_init=conv_kernel_init(groups), name=name)


def batch_norm(train: bool, dtype: Any, axis_name: str | None, name: str) -> nn.BatchNorm:
  """BatchNorm with statistics in float32 (Flax promotes them) and output in the compute dtype."""
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype,
                      param_dtype=jnp.float32, axis_name=axis_name, name=name)


def global_avg_pool(x):
  """Spatial mean accumulated in float32, returned in the input dtype; keeps dims for SE."""
  return jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)


class SqueezeExcite(nn.Module):
  """x * sigmoid(expand(swish(reduce(mean_hw(x))))) with 1x1 convs named as timm's."""
  reduced: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = conv(self.reduced, use_bias=True, dtype=self.dtype, name="conv_reduce")(global_avg_pool(x))
    scale = conv(x.shape[-1], use_bias=True, dtype=self.dtype, name="conv_expand")(nn.swish(scale))
    return x * nn.sigmoid(scale)


def drop_path(x, rate: float, deterministic: bool, module: nn.Module):
  """Stochastic depth: drops whole samples of a residual branch (and rescales the rest) in training."""
  if rate == 0.0 or deterministic:
    return x
  keep = 1.0 - rate
  mask = jax.random.bernoulli(module.make_rng("dropout"), keep, (x.shape[0], 1, 1, 1))
  return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))
