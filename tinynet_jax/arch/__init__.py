"""The spec layer: pure Python (no jax), the single source of truth for a network's shape."""
from tinynet_jax.arch.geometry import check_resolution, conv_output_size, conv_padding
from tinynet_jax.arch.spec import (BASE_RESOLUTION, EFFICIENTNET_B0_ARCH, RULES, BlockSpec, ModelSpec,
                                   ScalingRules, build_spec)
from tinynet_jax.arch.grammar import BlockDef, format_block, parse_block
from tinynet_jax.arch.rounding import make_divisible, round_channels, scale_stage_depth
from tinynet_jax.arch.zoo import TINYNETS, ZOO, ZooEntry, giant_formula, model_spec, zoo_entry

__all__ = [
    "BASE_RESOLUTION", "EFFICIENTNET_B0_ARCH", "RULES", "BlockDef", "BlockSpec", "ModelSpec", "ScalingRules",
    "TINYNETS", "ZOO", "ZooEntry", "build_spec", "check_resolution", "conv_output_size", "conv_padding", "format_block",
    "giant_formula", "make_divisible", "model_spec", "parse_block", "round_channels", "scale_stage_depth",
    "zoo_entry",
]
