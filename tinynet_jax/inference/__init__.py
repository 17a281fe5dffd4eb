"""Using a trained network: load any checkpoint, preprocess images like the reference, name classes, evaluate."""
from tinynet_jax.inference.loading import IMAGENET_CLASSES, Loaded, class_names, load, load_checkpoint, preprocess

__all__ = ["IMAGENET_CLASSES", "Loaded", "class_names", "load", "load_checkpoint", "preprocess"]
