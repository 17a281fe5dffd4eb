"""The EfficientNet/TinyNet network built from a `ModelSpec` (Flax linen, NHWC).

Module names follow timm's state dict (`conv_stem`, `bn1`, `blocks_{stage}_{index}` with `conv_pw`, `bn1`,
`conv_dw`, `bn2`, `se`, `conv_pwl`, `bn3`; `conv_head`, `bn2`, `classifier`) so that weight import is a few
renaming rules (`tinynet_jax.checkpoints.timm_port`).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from tinynet_jax.models.layers import (DepthwiseConv, SqueezeExcite, batch_norm, conv, dense_kernel_init,
                                       drop_path, global_avg_pool)
from tinynet_jax.arch import BlockSpec, ModelSpec


class Block(nn.Module):
  """A 'ds' (depthwise-separable) or 'ir' (inverted residual / MBConv) block."""
  block: BlockSpec
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  depthwise_impl: str = "auto"
  bn_group_size: int | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    b = self.block
    norm = lambda name: batch_norm(train, self.dtype, self.bn_axis_name, name, self.bn_group_size)  # noqa: E731
    shortcut = x
    # Norm names follow timm: the ds block has bn1 (dw) / bn2 (pw); the ir block bn1 (pw) / bn2 (dw) / bn3.
    if b.kind == "ir":
      x = nn.swish(norm("bn1")(conv(b.mid_channels, dtype=self.dtype, name="conv_pw")(x)))
    x = DepthwiseConv(b.mid_channels, b.kernel, b.stride, dtype=self.dtype, impl=self.depthwise_impl,
                      name="conv_dw")(x)
    x = nn.swish(norm("bn2" if b.kind == "ir" else "bn1")(x))
    if b.se_channels:
      x = SqueezeExcite(b.se_channels, dtype=self.dtype, name="se")(x)
    project = "conv_pwl" if b.kind == "ir" else "conv_pw"
    x = conv(b.out_channels, dtype=self.dtype, name=project)(x)
    x = norm("bn3" if b.kind == "ir" else "bn2")(x)
    if b.has_residual:
      x = drop_path(x, self.drop_path_rate, not train, self) + shortcut
    return x


class EfficientNet(nn.Module):
  """Stem -> blocks -> head -> `classify` (pool -> dropout -> classifier), exactly as timm's EfficientNet.

  Attributes:
    spec: the network (see `tinynet_jax.model_spec`).
    num_classes: classifier outputs; 0 returns the pooled features instead of logits.
    drop_rate: dropout before the classifier (training only).
    drop_path_rate: stochastic depth, rising linearly from 0 at the first block (timm's rule i / N).
    dtype: compute dtype (e.g. bfloat16 on accelerators); parameters stay float32, BN statistics are
      computed in float32 and logits are returned in float32.
    bn_axis_name: mapped axis over which BatchNorm syncs batch statistics (None: per replica); with
      bn_group_size, the axis that BN groups larger than a replica's batch span.
    depthwise_impl: 'xla' (grouped conv), 'shift' (sum of shifted slices; fast on XLA:CPU) or 'auto' (shift on
      CPU, xla on accelerators). Same parameters and function either way.
    bn_group_size: examples per BN statistics group in training (`layers.GroupedBatchNorm`): groups within a
      replica's batch, or spanning consecutive replicas along bn_axis_name. None: as bn_axis_name says. Same
      variables either way.
  """
  spec: ModelSpec
  num_classes: int = 1000
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  depthwise_impl: str = "auto"
  bn_group_size: int | None = None

  def setup(self):
    # The head's modules are bound here, not inline, so that `classify` also applies on its own (Grad-CAM);
    # their names are those the inline modules had ('Dropout_0' seeds the dropout mask).
    if self.num_classes:
      self.dropout = nn.Dropout(self.drop_rate, name="Dropout_0")
      self.classifier = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                                 kernel_init=dense_kernel_init, name="classifier")

  def classify(self, head, train: bool = False):
    """Head activations (N, h, w, C) -> global average pool -> dropout -> classifier -> float32 logits (the
    pooled features when num_classes is 0): the end of `__call__`, and what Grad-CAM differentiates
    (``model.apply(variables, head, method=EfficientNet.classify)``)."""
    x = global_avg_pool(head)[:, 0, 0, :]
    if self.num_classes:
      x = self.classifier(self.dropout(x, deterministic=not train))
    return x.astype(jnp.float32)

  @nn.compact
  def __call__(self, x, train: bool = False, return_features: bool = False):
    """Maps NHWC images to float32 logits; with `return_features`, also a dict of intermediate maps:
    'stem', 'stage0'..'stageN' (block outputs), 'head' (pre-pool head activations, used by CAMs), 'pooled'.
    """
    spec = self.spec
    norm = lambda name: batch_norm(train, self.dtype, self.bn_axis_name, name, self.bn_group_size)  # noqa: E731
    features = {}
    x = x.astype(self.dtype)
    x = nn.swish(norm("bn1")(conv(spec.stem_channels, 3, 2, dtype=self.dtype, name="conv_stem")(x)))
    features["stem"] = x
    total, index = len(spec.blocks), 0
    for stage_index, stage in enumerate(spec.stages):
      for block_index, block in enumerate(stage):
        x = Block(block, self.drop_path_rate * index / total, self.dtype, self.bn_axis_name, self.depthwise_impl,
                  self.bn_group_size, name=f"blocks_{stage_index}_{block_index}")(x, train)
        index += 1
      features[f"stage{stage_index}"] = x
    x = nn.swish(norm("bn2")(conv(spec.head_channels, dtype=self.dtype, name="conv_head")(x)))
    features["head"] = x
    logits = self.classify(x, train)
    if not return_features:
      return logits
    features["pooled"] = global_avg_pool(x)[:, 0, 0, :].astype(jnp.float32)
    return logits, features


def create_model(spec: ModelSpec, num_classes: int = 1000, **kwargs) -> EfficientNet:
  """The Flax module for `spec`; kwargs: drop_rate, drop_path_rate, dtype, bn_axis_name, depthwise_impl,
  bn_group_size."""
  if not isinstance(spec, ModelSpec):
    raise TypeError(f"create_model takes a ModelSpec (see tinynet_jax.model_spec), got {type(spec).__name__}")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
    raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
  return EfficientNet(spec, num_classes, **kwargs)
