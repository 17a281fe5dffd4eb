"""The one place that imports TensorFlow: hides accelerators from it and sets big_vision's tf.data options.

Importing this module needs the ``data`` extra; `tinynet_jax.data` imports it only when a TF-backed dataset is
asked for, so the package itself stays importable (and 'synthetic' usable) without TensorFlow.
"""
from __future__ import annotations

import os

# Before TF loads (a user's own setting wins): no INFO banners on stderr, so a CLI error stays one line; and no
# oneDNN custom kernels -- the pipeline uses no op they speed up, and without them TF's CPU results do not
# depend on which oneDNN kernel the host CPU selects (and its banner, printed whatever the log level, goes too).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

# TF must never take GPU/TPU memory from JAX; this has to happen before TF initialises its devices.
for _kind in ("GPU", "TPU"):
  try:
    tf.config.set_visible_devices([], _kind)
  except (RuntimeError, ValueError):  # devices already initialised (TF was used first), or no such kind
    pass

# Grappler's constant folding and arithmetic optimiser reassociate float arithmetic inside tf.data functions --
# e.g. (m / 10) * 0.45 becomes m * 0.045, and (K + c) - 0.5 becomes c + (K - 0.5) -- which moves PIL-style
# truncations by one level on some pixels, so an augmentation would differ between eager mode and tf.data (and
# between graph layouts). We need bit-exact, reproducible arithmetic more than those rewrites; this process's TF
# only runs the input pipeline.
tf.config.optimizer.set_experimental_options({"constant_folding": False, "arithmetic_optimization": False})

__all__ = ["tf", "tfds", "dataset_options"]


def dataset_options() -> tf.data.Options:
  """Deterministic order, a private thread pool sized to the host, no injected prefetch (big_vision)."""
  options = tf.data.Options()
  options.deterministic = True
  options.threading.private_threadpool_size = max(os.cpu_count() or 1, 2)
  options.experimental_optimization.inject_prefetch = False
  return options
