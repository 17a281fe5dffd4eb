"""Flax linen models built from specs."""
from tinynet_jax.models.efficientnet import Block, EfficientNet, create_model
from tinynet_jax.models.layers import init_variables

__all__ = ["Block", "EfficientNet", "create_model", "init_variables"]
