"""Using a trained network: load any checkpoint, preprocess images like the reference, name classes, predict;
`evaluate` scores a checkpoint on a dataset and `cam` draws class activation maps."""
from tinynet_jax.inference.loading import IMAGENET_CLASSES, Loaded, class_names, load, load_checkpoint, preprocess
from tinynet_jax.inference.predict import predict

__all__ = ["IMAGENET_CLASSES", "Loaded", "class_names", "load", "load_checkpoint", "predict", "preprocess"]
