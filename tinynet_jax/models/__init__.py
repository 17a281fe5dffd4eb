"""Flax linen models built from specs."""
from tinynet_jax.models.efficientnet import Block, EfficientNet, create_model

__all__ = ["Block", "EfficientNet", "create_model"]
