"""Analytic parameter and MAC counts over a `ModelSpec` (no jax, no model build).

"FLOPs" in the paper (as in EfficientNet) are multiply-accumulates of the convolution and linear layers: the
stem, every 1x1 / depthwise conv, the squeeze-excite convs and the classifier. BatchNorm, activations, pooling,
biases and the SE gating multiply are not counted (each is < 0.5% of the total); this matches thop's counts of
timm's models to < 0.1%.
"""
from __future__ import annotations

import dataclasses

from tinynet_jax.arch import (BASE_RESOLUTION, BlockSpec, ModelSpec, check_resolution, conv_output_size,
                              conv_padding, model_spec)

FLOPS_CLASSES = 1000  # the paper's FLOPs count ImageNet's 1000-class classifier, whatever the dataset


def _valid_taps_1d(size: int, kernel: int, stride: int) -> int:
  """Kernel taps that land inside the (unpadded) input, summed over the output positions of one axis."""
  padding = conv_padding(kernel, stride)
  total = 0
  for out in range(conv_output_size(size, kernel, stride)):
    start = out * stride - padding
    total += min(start + kernel, size) - max(start, 0)
  return total


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """One multiply-accumulate layer of the network, in order."""
  name: str  # timm-style module path, e.g. 'blocks.1.0.conv_dw'
  kind: str  # 'conv' or 'linear'
  in_channels: int
  out_channels: int
  kernel: int
  stride: int
  groups: int
  in_size: int  # spatial size of the input (square); 1 for linear / SE layers
  bias: bool

  @property
  def out_size(self) -> int:
    return conv_output_size(self.in_size, self.kernel, self.stride)

  @property
  def weight_count(self) -> int:
    return self.kernel * self.kernel * self.in_channels // self.groups * self.out_channels

  @property
  def macs(self) -> int:
    return self.out_size ** 2 * self.weight_count

  @property
  def valid_macs(self) -> int:
    """MACs without the taps that multiply zero padding (what XLA's cost analysis counts)."""
    taps = _valid_taps_1d(self.in_size, self.kernel, self.stride) ** 2
    return taps * self.in_channels // self.groups * self.out_channels


def _conv(name, cin, cout, kernel, stride, size, groups=1, bias=False):
  return LayerCost(name, "conv", cin, cout, kernel, stride, groups, size, bias)


def _block_layers(prefix: str, block: BlockSpec, size: int) -> tuple[list[LayerCost], int]:
  layers = []
  if block.kind == "ir":  # 1x1 expansion; a 'ds' block goes straight to the depthwise conv
    layers.append(_conv(f"{prefix}.conv_pw", block.in_channels, block.mid_channels, 1, 1, size))
  layers.append(_conv(f"{prefix}.conv_dw", block.mid_channels, block.mid_channels, block.kernel, block.stride, size,
                      groups=block.mid_channels))
  size = conv_output_size(size, block.kernel, block.stride)
  if block.se_channels:
    layers.append(_conv(f"{prefix}.se.conv_reduce", block.mid_channels, block.se_channels, 1, 1, 1, bias=True))
    layers.append(_conv(f"{prefix}.se.conv_expand", block.se_channels, block.mid_channels, 1, 1, 1, bias=True))
  project = "conv_pwl" if block.kind == "ir" else "conv_pw"
  layers.append(_conv(f"{prefix}.{project}", block.mid_channels, block.out_channels, 1, 1, size))
  return layers, size


def layer_costs(spec: ModelSpec, resolution: int | None = None,
                num_classes: int = 1000) -> list[LayerCost]:
  """Every conv/linear layer of the network at `resolution` (default: the spec's)."""
  size = spec.resolution if resolution is None else check_resolution(resolution)
  layers = [_conv("conv_stem", 3, spec.stem_channels, 3, 2, size)]
  size = layers[0].out_size
  for stage_index, stage in enumerate(spec.stages):
    for block_index, block in enumerate(stage):
      block_layers, size = _block_layers(f"blocks.{stage_index}.{block_index}", block, size)
      layers.extend(block_layers)
  layers.append(_conv("conv_head", spec.blocks[-1].out_channels, spec.head_channels, 1, 1, size))
  if num_classes:
    layers.append(LayerCost("classifier", "linear", spec.head_channels, num_classes, 1, 1, 1, 1, True))
  return layers


def count_macs(spec: ModelSpec, resolution: int | None = None, num_classes: int = 1000) -> int:
  """Multiply-accumulates of one forward pass of one image (the paper's "FLOPs")."""
  return sum(layer.macs for layer in layer_costs(spec, resolution, num_classes))


def reference_macs(base_resolution: int = BASE_RESOLUTION, num_classes: int = FLOPS_CLASSES) -> int:
  """MACs of EfficientNet-B0 at `base_resolution`: the unit of the FLOPs ratio c (the sweep's levels, the
  formula's budgets)."""
  return count_macs(model_spec("efficientnet_b0", base_resolution=base_resolution), num_classes=num_classes)


def _batchnorm_channels(spec: ModelSpec) -> int:
  channels = spec.stem_channels + spec.head_channels
  for block in spec.blocks:
    channels += block.out_channels + block.mid_channels * (2 if block.kind == "ir" else 1)
  return channels


def count_params(spec: ModelSpec, num_classes: int = 1000) -> int:
  """Trainable parameters (weights, biases, BN scale and offset; not BN running statistics)."""
  weights = 0
  for layer in layer_costs(spec, num_classes=num_classes):
    weights += layer.weight_count + (layer.out_channels if layer.bias else 0)
  return weights + 2 * _batchnorm_channels(spec)


@dataclasses.dataclass(frozen=True)
class StageCost:
  name: str
  blocks: int
  kernel: int
  stride: int
  in_channels: int
  out_channels: int
  in_size: int
  out_size: int
  params: int
  macs: int


def stage_costs(spec: ModelSpec, resolution: int | None = None, num_classes: int = 1000) -> list[StageCost]:
  """Per-stage table (stem, each stage, head) of sizes, parameters and MACs."""
  layers = layer_costs(spec, resolution, num_classes)

  def group(name: str, prefixes: tuple[str, ...], blocks: int, kernel: int, stride: int,
            in_ch: int, out_ch: int, bn_channels: int) -> StageCost:
    members = [l for l in layers if l.name.startswith(prefixes)]
    params = sum(l.weight_count + (l.out_channels if l.bias else 0) for l in members) + 2 * bn_channels
    return StageCost(name, blocks, kernel, stride, in_ch, out_ch, members[0].in_size,
                     members[-1].out_size if members[-1].kind == "conv" else 1,
                     params, sum(l.macs for l in members))

  rows = [group("stem", ("conv_stem",), 0, 3, 2, 3, spec.stem_channels, spec.stem_channels)]
  for index, stage in enumerate(spec.stages):
    bn = sum(b.out_channels + b.mid_channels * (2 if b.kind == "ir" else 1) for b in stage)
    rows.append(group(f"stage{index}", (f"blocks.{index}.",), len(stage), stage[0].kernel, stage[0].stride,
                      stage[0].in_channels, stage[-1].out_channels, bn))
  rows.append(group("head", ("conv_head", "classifier"), 0, 1, 1, spec.blocks[-1].out_channels,
                    spec.head_channels, spec.head_channels))
  return rows
