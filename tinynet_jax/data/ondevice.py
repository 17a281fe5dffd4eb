"""Train augmentation inside the jitted step, for datasets resident in accelerator memory (JAX, no TensorFlow).

A sweep trains ~100 small models on one dataset; with the uint8 images on the device (loaded once, shared by
every model of the process), the host only sends each step's example indices and positions, and the CPU input
pipeline is out of the loop (`tinynet_jax.train.loop`, config ``data_on_device``).

The transforms follow `tinynet_jax.data.tfdata.augment` (the TF pipeline): timm's random-resized crop (10 tries, then
the centre-crop fallback), an antialiased resize to the model's resolution, horizontal flip, torchvision-style
colour jitter (brightness, contrast, saturation in a random order), mean/std normalisation. Differences, by
design: draws come from JAX's PRNG (keyed by the seed and the example's global position, so a batch never
depends on the device or process count), the resize is `jax.image.scale_and_translate` in float (no uint8
rounding between passes), and RandAugment and random erasing are host-pipeline only (`check_augment`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from tinynet_jax.data.preprocessing import MEAN, STD
from tinynet_jax.data.types import Augment
from tinynet_jax.errors import DataError

# Salts of the per-stage keys, as in the TF pipeline; never renumber them.
_CROP, _INTERPOLATION, _FLIP, _JITTER = 1, 2, 3, 4
_ATTEMPTS = 10
_METHODS = {"bicubic": "cubic", "bilinear": "linear"}


def check_augment(augment: Augment) -> None:
  """A one-line DataError for what only the host pipeline implements."""
  if augment.randaugment:
    raise DataError("data_on_device: RandAugment runs in the host pipeline only; set augment.randaugment='' "
                    "or data_on_device=False")
  if augment.random_erasing:
    raise DataError("data_on_device: random erasing runs in the host pipeline only; set "
                    "augment.random_erasing=0 or data_on_device=False")


def sample_crop(key: jax.Array, height: int, width: int, scale, ratio) -> tuple[jax.Array, ...]:
  """timm's RandomResizedCrop window (top, left, h, w) as float32 scalars; see `augment.sample_crop`."""
  k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(k_area, (_ATTEMPTS,), minval=scale[0], maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(k_ratio, (_ATTEMPTS,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
  w = jnp.round(jnp.sqrt(area * aspect))
  h = jnp.round(jnp.sqrt(area / aspect))
  fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = jnp.argmax(fits)
  h, w = h[first], w[first]
  top = jnp.floor(jax.random.uniform(k_top) * (height - h + 1))
  left = jnp.floor(jax.random.uniform(k_left) * (width - w + 1))
  # torchvision's fallback: the centre crop with the aspect clamped to the ratio range.
  in_ratio, low, high = width / height, min(ratio), max(ratio)
  fallback_w = float(round(height * high)) if in_ratio > high else float(width)
  fallback_h = float(round(width / low)) if in_ratio < low else float(height)
  ok = fits.any()
  h = jnp.where(ok, h, fallback_h)
  w = jnp.where(ok, w, fallback_w)
  top = jnp.where(ok, top, (height - fallback_h) // 2)
  left = jnp.where(ok, left, (width - fallback_w) // 2)
  return top, left, h, w


def _crop_resize(image: jax.Array, window, resolution: int, method: str) -> jax.Array:
  """The window [top, top + h) x [left, left + w) of `image`, resized (antialiased) to resolution^2."""
  top, left, h, w = window
  scale = jnp.stack([resolution / h, resolution / w])
  translation = -jnp.stack([top, left]) * scale
  return jax.image.scale_and_translate(image, (resolution, resolution, image.shape[-1]), (0, 1), scale,
                                       translation, method=method, antialias=True)


def _grey(image: jax.Array) -> jax.Array:
  """PIL's 'L' conversion (ITU-R 601-2 luma)."""
  return image @ jnp.asarray([0.299, 0.587, 0.114], image.dtype)


def _color_jitter(image: jax.Array, strength: float, key: jax.Array) -> jax.Array:
  """Brightness, contrast, saturation factors ~ U[max(0, 1 - s), 1 + s], applied in a random order."""
  k_factors, k_order = jax.random.split(key)
  factors = jax.random.uniform(k_factors, (3,), minval=max(0.0, 1.0 - strength), maxval=1.0 + strength)
  order = jnp.argsort(jax.random.uniform(k_order, (3,)))
  def blend(x, toward, f):  # PIL ImageEnhance: toward + (x - toward) * f
    return toward + (x - toward) * f

  ops = (lambda x, f: x * f,
         lambda x, f: blend(x, jnp.mean(_grey(x)), f),
         lambda x, f: blend(x, _grey(x)[..., None], f))
  for i in range(3):
    image = jax.lax.switch(order[i], [lambda x, op=op, k=k: jnp.clip(op(x, factors[k]), 0.0, 255.0)
                                      for k, op in enumerate(ops)], image)
  return image


def whole_image_crop(augment: Augment, height: int, width: int) -> bool:
  """Whether the crop always takes the whole image (scale and ratio pinned to 1 on a square image, one
  interpolation), so that every example is resized alike (digits, digit_mosaic)."""
  return (tuple(augment.crop_scale) == (1.0, 1.0) and tuple(augment.crop_ratio) == (1.0, 1.0)
          and height == width and augment.interpolation != "random")


def _resize_whole(images: jax.Array, resolution: int, method: str) -> jax.Array:
  """uint8 (B, H, W, 3) -> float32 (B, res, res, 3): `_crop_resize` of the whole window, one static resize for
  the batch. The same arithmetic; with no per-example window XLA:CPU compiles the train step ~4 core-seconds
  faster and runs it ~10% faster (docs/performance.md)."""
  images = images.astype(jnp.float32)
  size = images.shape[1]
  scale = jnp.asarray([resolution / size, resolution / size], jnp.float32)
  return jax.image.scale_and_translate(images, (images.shape[0], resolution, resolution, images.shape[-1]),
                                       (1, 2), scale, jnp.zeros(2, jnp.float32), method=method, antialias=True)


def augment_example(image: jax.Array, key: jax.Array, *, augment: Augment, resolution: int,
                    resized: bool = False) -> jax.Array:
  """uint8 (H, W, 3) -> float32 (res, res, 3), normalised; `resized`: `image` is already the whole image
  resized to res (float32), so the crop is skipped (`whole_image_crop`)."""
  height, width = image.shape[:2]
  image = image.astype(jnp.float32)
  if not resized:
    window = sample_crop(jax.random.fold_in(key, _CROP), height, width, augment.crop_scale, augment.crop_ratio)
    if augment.interpolation == "random":
      bicubic = jax.random.uniform(jax.random.fold_in(key, _INTERPOLATION)) < 0.5
      image = jnp.where(bicubic, _crop_resize(image, window, resolution, "cubic"),
                        _crop_resize(image, window, resolution, "linear"))
    else:
      image = _crop_resize(image, window, resolution, _METHODS[augment.interpolation])
  image = jnp.clip(image, 0.0, 255.0)
  if augment.flip:
    image = jnp.where(jax.random.uniform(jax.random.fold_in(key, _FLIP)) < 0.5, image[:, ::-1], image)
  if augment.color_jitter > 0:
    image = _color_jitter(image, augment.color_jitter, jax.random.fold_in(key, _JITTER))
  mean = jnp.asarray(MEAN, jnp.float32) * 255.0
  std = jnp.asarray(STD, jnp.float32) * 255.0
  return (image - mean) / std


def augment_batch(images: jax.Array, positions: jax.Array, key: jax.Array, *, augment: Augment,
                  resolution: int) -> jax.Array:
  """Augments uint8 (B, H, W, 3) rows; row i's draws come from ``fold_in(key, positions[i])``."""
  check_augment(augment)
  keys = jax.vmap(lambda p: jax.random.fold_in(key, p))(positions.astype(jnp.uint32))
  resized = whole_image_crop(augment, *images.shape[1:3])
  if resized:
    images = _resize_whole(images, resolution, _METHODS[augment.interpolation])
  return jax.vmap(lambda x, k: augment_example(x, k, augment=augment, resolution=resolution, resized=resized))(
      images, keys)
