"""Layers with timm's exact semantics: symmetric padding, PyTorch BatchNorm constants, Google-style init."""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from tinynet_jax.arch.geometry import conv_output_size, conv_padding

# PyTorch BatchNorm2d defaults used by the official models: momentum 0.1 (Flax keeps 1 - 0.1), eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class _DrawPool:
  """Hands out consecutive slices of one normal and one uniform vector (see `init_variables`); with no
  vectors it only counts what the initialisers ask for."""

  def __init__(self, normal: jax.Array | None = None, uniform: jax.Array | None = None):
    self.vectors = {"normal": normal, "uniform": uniform}
    self.used = {"normal": 0, "uniform": 0}

  def take(self, kind: str, shape: tuple[int, ...], dtype) -> jax.Array:
    size, start = math.prod(shape), self.used[kind]
    self.used[kind] += size
    vector = self.vectors[kind]
    if vector is None:
      return jnp.zeros(shape, dtype)
    return jax.lax.dynamic_slice_in_dim(vector, start, size).reshape(shape).astype(dtype)


_POOL: contextvars.ContextVar[_DrawPool | None] = contextvars.ContextVar("tinynet_init_pool", default=None)


@contextlib.contextmanager
def _pool(pool: _DrawPool):
  token = _POOL.set(pool)
  try:
    yield pool
  finally:
    _POOL.reset(token)


def _standard(kind: str, key: jax.Array, shape, dtype) -> jax.Array:
  """N(0, 1) or U[0, 1) draws: from the active pool, else from `key`."""
  pool = _POOL.get()
  if pool is not None:
    return pool.take(kind, tuple(shape), dtype)
  return jax.random.normal(key, shape, dtype) if kind == "normal" else jax.random.uniform(key, shape, dtype)


def init_variables(module: nn.Module, key: jax.Array, *args, **kwargs) -> Any:
  """``module.init(key, *args, **kwargs)`` with every random draw of this file's initialisers taken from one
  normal and one uniform vector (split from `key`) instead of one RNG op per parameter.

  Same distributions, values a pure function of the key (not equal to `module.init`'s). Why: XLA:CPU compiles
  each per-parameter RNG op separately, and a sweep model's ~70 of them cost ~5 s of compile (measured, 26 px
  TinyNet) against well under a second for two big draws. Use it inside `jax.jit`.
  """
  with _pool(_DrawPool()) as counter:
    jax.eval_shape(lambda k: module.init(k, *args, **kwargs), key)
  k_normal, k_uniform = jax.random.split(jax.random.fold_in(key, 0x1417))
  pool = _DrawPool(jax.random.normal(k_normal, (counter.used["normal"],)),
                   jax.random.uniform(k_uniform, (counter.used["uniform"],)))
  with _pool(pool):
    return module.init(key, *args, **kwargs)


def conv_kernel_init(groups: int = 1) -> jax.nn.initializers.Initializer:
  """N(0, sqrt(2 / fan_out)) with fan_out = kh * kw * out / groups (timm `_init_weight_goog`).

  Flax's variance_scaling would count a depthwise kernel's fan_out as kh * kw * channels; timm's is kh * kw.
  """
  def init(key, shape, dtype=jnp.float32):
    kh, kw, _, out = shape
    std = math.sqrt(2.0 / (kh * kw * out // groups))
    return std * _standard("normal", key, shape, dtype)
  return init


# timm's classifier init U(±1/sqrt(fan_out)) assumes ImageNet's 1000 outputs. With a small head the bound grows
# (±0.32 at 10 classes) and a fresh network starts far from uniform predictions: cross-entropy 5.8 instead of
# ln 10 = 2.3 measured on a 10-class TinyNet, which a short run spends its first steps undoing. Deviation from
# timm: the fan is floored at 1000, so heads of >= 1000 classes (ImageNet, ported weights) are initialised exactly
# as timm does and smaller heads start with ImageNet's logit scale.
CLASSIFIER_MIN_FAN_OUT = 1000


def dense_kernel_init(key, shape, dtype=jnp.float32):
  """U(-1/sqrt(fan_out), 1/sqrt(fan_out)) as timm initialises the classifier, fan_out floored at
  `CLASSIFIER_MIN_FAN_OUT` (a documented deviation for small heads)."""
  bound = 1.0 / math.sqrt(max(shape[-1], CLASSIFIER_MIN_FAN_OUT))
  return (2.0 * _standard("uniform", key, shape, dtype) - 1.0) * bound


def symmetric_padding(kernel: int, stride: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """`conv_padding` (timm's symmetric padding) on both sides of both spatial axes, as flax/lax take it."""
  pad = conv_padding(kernel, stride)
  return ((pad, pad), (pad, pad))


DEPTHWISE_IMPLS = ("auto", "xla", "shift")


def resolve_depthwise_impl(impl: str) -> str:
  """'auto' -> 'shift' on CPU (XLA:CPU's grouped-conv gradient is several times slower), 'xla' elsewhere."""
  if impl not in DEPTHWISE_IMPLS:
    raise ValueError(f"depthwise_impl must be one of {', '.join(DEPTHWISE_IMPLS)}, got {impl!r}")
  if impl == "auto":
    return "shift" if jax.default_backend() == "cpu" else "xla"
  return impl


class DepthwiseConv(nn.Module):
  """A k x k depthwise conv with symmetric padding; the parameter is nn.Conv's ``kernel`` (k, k, 1, C).

  'xla' is a grouped `conv_general_dilated`; 'shift' sums k² strided slices of the padded input times one
  kernel tap each. Same function (float summation order aside), same parameters; 'shift' differentiates into
  slices and multiplies, which XLA:CPU runs far faster than its grouped-conv gradient.
  """
  features: int
  kernel: int
  stride: int = 1
  dtype: Any = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    k, s = self.kernel, self.stride
    kernel = self.param("kernel", conv_kernel_init(self.features), (k, k, 1, self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    padding = symmetric_padding(k, s)
    if resolve_depthwise_impl(self.impl) == "xla":
      return jax.lax.conv_general_dilated(x, kernel, (s, s), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                          feature_group_count=self.features)
    height, width = x.shape[1:3]
    out_h, out_w = conv_output_size(height, k, s), conv_output_size(width, k, s)
    x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    out = None
    for i in range(k):
      for j in range(k):
        tap = x[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s, :] * kernel[i, j, 0]
        out = tap if out is None else out + tap
    return out


def conv(features: int, kernel: int = 1, stride: int = 1, groups: int = 1, use_bias: bool = False,
         dtype: Any = jnp.float32, name: str | None = None) -> nn.Conv:
  """A square conv with symmetric padding, float32 params and a configurable compute dtype."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=symmetric_padding(kernel, stride),
                 feature_group_count=groups, use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                 kernel_init=conv_kernel_init(groups), name=name)


class GroupedBatchNorm(nn.Module):
  """nn.BatchNorm (same variables, float32 statistics, fast variance E[x²] - E[x]²) whose training statistics
  are those of groups of `group_size` consecutive examples of the global batch, whatever the device layout.

  When `group_size` divides this replica's batch n, the batch splits into n / group_size groups ("ghost" BN;
  one group is exactly nn.BatchNorm without an axis name). A group of k * n examples spans k consecutive
  replicas along `axis_name`, which combine their per-channel moments (equal counts, so their plain mean).
  The running statistics move towards the mean over this replica's groups of the groups' mean and variance;
  the train step's pmean over replicas then makes them the mean over all groups of the global batch, so that
  one device with 8 groups and 8 devices with one each keep the same running statistics.
  """
  group_size: int
  use_running_average: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: Any = None
  axis_name: str | None = None

  def _layout(self, n: int) -> tuple[int, int]:
    """(groups in this replica's batch, replicas per group)."""
    size = self.group_size
    if n % size == 0:
      return n // size, 1
    if size % n == 0 and self.axis_name is not None and jax.lax.axis_size(self.axis_name) % (size // n) == 0:
      return 1, size // n
    axis = f"the {self.axis_name!r} axis" if self.axis_name else "no axis name"
    raise ValueError(f"BN group_size {size} neither divides the replica batch {n} nor spans a whole number of "
                     f"replicas dividing the replica count ({axis})")

  @nn.compact
  def __call__(self, x):
    # Variables created in nn.BatchNorm's order, names and dtypes: its checkpoints and ported weights load as is.
    features = (x.shape[-1],)
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), features)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), features)
    scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
    n = x.shape[0]
    if self.use_running_average:
      groups, mean, var = 1, ra_mean.value[None], ra_var.value[None]
    else:
      # At init (no mapped axis bound, any dummy batch) statistics of the whole batch: only shapes matter.
      groups, span = (1, 1) if self.is_initializing() else self._layout(n)
      stats_dtype = jnp.promote_types(x.dtype if self.dtype is None else self.dtype, jnp.float32)
      grouped = x.astype(stats_dtype).reshape(groups, n // groups, *x.shape[1:])
      axes = tuple(range(1, grouped.ndim - 1))
      moments = jnp.stack([grouped.mean(axes), jax.lax.square(grouped).mean(axes)])  # (2, groups, C)
      if span > 1:
        # lax.psum's axis_index_groups is not implemented under shard_map: gather every replica's (tiny)
        # moments and average those of this replica's group.
        gathered = jax.lax.all_gather(moments, self.axis_name)
        gathered = gathered.reshape(gathered.shape[0] // span, span, *moments.shape)
        group = jax.lax.axis_index(self.axis_name) // span
        moments = jax.lax.dynamic_index_in_dim(gathered, group, keepdims=False).mean(0)
      mean, mean2 = moments
      var = jnp.maximum(0.0, mean2 - jax.lax.square(mean))
      if not self.is_initializing():
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean.mean(0)
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var.mean(0)
    # nn.BatchNorm's normalisation, group by group.
    shape = (groups,) + (1,) * (x.ndim - 1) + features
    y = x.reshape(groups, n // groups, *x.shape[1:]) - mean.reshape(shape)
    y = y * (jax.lax.rsqrt(var.reshape(shape) + self.epsilon) * scale) + bias
    dtype = jnp.result_type(x, scale, bias) if self.dtype is None else self.dtype
    return y.reshape(x.shape).astype(dtype)


def batch_norm(train: bool, dtype: Any, axis_name: str | None, name: str,
               group_size: int | None = None) -> nn.Module:
  """BatchNorm with statistics in float32 (Flax promotes them) and output in the compute dtype.

  `group_size` None: nn.BatchNorm, statistics of the replica's batch or, with `axis_name`, of the whole mapped
  batch. Otherwise `GroupedBatchNorm`: statistics of groups of `group_size` examples, `axis_name` the axis that
  groups larger than a replica's batch span.
  """
  if group_size is not None:
    return GroupedBatchNorm(group_size, use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                            dtype=dtype, axis_name=axis_name, name=name)
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
