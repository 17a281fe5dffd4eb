"""The TensorFlow side of the data package: TFDS sources, tf.data pipelines and augmentations, dataset builders.

Everything that imports TensorFlow lives here (through `tfenv`, which hides accelerators from it); the parent
package `tinynet_jax.data` imports these modules only when a TF-backed dataset is asked for.
"""
