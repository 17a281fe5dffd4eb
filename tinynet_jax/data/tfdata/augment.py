"""Per-example preprocessing in TensorFlow: timm/torchvision train and eval transforms on encoded images.

Train: decode (fused with the crop for JPEGs) a random-resized crop (timm `RandomResizedCropAndInterpolation`,
10 tries then torchvision's centre-crop fallback), resize to ``res`` (antialiased, like PIL), horizontal flip,
then colour jitter (torchvision `ColorJitter` on PIL images: brightness/contrast/saturation in random order) or
RandAugment, normalise, random erasing (timm 'pixel' mode). Eval: resize the short side to
``floor(res / 0.875)`` (bicubic, antialiased) and centre-crop (timm's eval transform).

Every random draw is stateless and comes from one per-example seed (shape [2]) through `stateless_fold_in`
with a fixed salt per stage, so a transform is a pure function of (image, seed): the same eagerly and in
tf.data, whatever the parallelism.
"""
from __future__ import annotations

import math

from tinynet_jax.data.tfdata import randaugment as ra
from tinynet_jax.data.preprocessing import EVAL_CROP_PCT, MEAN, STD, eval_resize_size
from tinynet_jax.data.types import Augment
from tinynet_jax.data.tfdata.tfenv import tf

# Salts for the per-stage seeds; never renumber them (that would change every augmentation).
_CROP, _INTERPOLATION, _FLIP, _JITTER, _RANDAUG, _ERASE = 1, 2, 3, 4, 5, 6
_ATTEMPTS = 10


def _stage_seed(seed, salt: int):
  return tf.random.experimental.stateless_fold_in(seed, salt)


def _uniform(shape, seed, low=0.0, high=1.0):
  return tf.random.stateless_uniform(shape, seed, low, high, dtype=tf.float64)


def _randint_inclusive(u, high):
  """Python's ``random.randint(0, high)`` from uniforms u in [0, 1)."""
  return tf.cast(tf.floor(u * tf.cast(high + 1, tf.float64)), tf.int32)


def sample_crop(height, width, scale, ratio, seed):
  """timm's RandomResizedCrop window (top, left, h, w) for an image of the given size.

  Ten tries of area ~ U(scale) * H * W and log-aspect ~ U(log ratio), sides rounded half to even (Python's
  round); the first that fits (and is at least one pixel, as torchvision demands) wins, with a uniform offset.
  If none fits: the centre crop with the aspect clamped to `ratio` (the whole image when its aspect is within
  range).
  """
  s = tf.random.experimental.stateless_split(seed, 4)
  h_img, w_img = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
  area = h_img * w_img * _uniform([_ATTEMPTS], s[0], scale[0], scale[1])
  log_ratio = _uniform([_ATTEMPTS], s[1], math.log(ratio[0]), math.log(ratio[1]))
  aspect = tf.exp(log_ratio)
  w = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
  h = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
  fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
  h, w = h[first], w[first]
  top = _randint_inclusive(_uniform([_ATTEMPTS], s[2])[first], height - h)
  left = _randint_inclusive(_uniform([_ATTEMPTS], s[3])[first], width - w)

  in_ratio = w_img / h_img
  low, high = min(ratio), max(ratio)
  fallback_w = tf.where(in_ratio > high, tf.cast(tf.round(h_img * high), tf.int32), width)
  fallback_h = tf.where(in_ratio < low, tf.cast(tf.round(w_img / low), tf.int32), height)
  ok = tf.reduce_any(fits)
  h = tf.where(ok, h, fallback_h)
  w = tf.where(ok, w, fallback_w)
  top = tf.where(ok, top, (height - fallback_h) // 2)
  left = tf.where(ok, left, (width - fallback_w) // 2)
  return top, left, h, w


def decode(encoded):
  """Any TF-decodable image (JPEG, PNG, ...) -> uint8 (H, W, 3)."""
  image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
  return tf.ensure_shape(image, [None, None, 3])


def decode_random_crop(encoded, scale, ratio, seed):
  """Decode only the random crop of a JPEG (`decode_and_crop_jpeg`); other formats decode, then crop."""
  def jpeg():
    shape = tf.io.extract_jpeg_shape(encoded)
    top, left, h, w = sample_crop(shape[0], shape[1], scale, ratio, seed)
    return tf.io.decode_and_crop_jpeg(encoded, tf.stack([top, left, h, w]), channels=3)

  def other():
    image = decode(encoded)
    shape = tf.shape(image)
    top, left, h, w = sample_crop(shape[0], shape[1], scale, ratio, seed)
    return image[top:top + h, left:left + w]

  return tf.ensure_shape(tf.cond(tf.io.is_jpeg(encoded), jpeg, other), [None, None, 3])


def _resize_pass(image, size, method: str):
  out = tf.image.resize(image, size, method=method, antialias=True)
  return tf.cast(tf.clip_by_value(tf.floor(out + 0.5), 0.0, 255.0), tf.uint8)  # PIL rounds halves up


def resize(image, size, method: str):
  """PIL's resize of a uint8 image: antialiased (the kernel widens when shrinking), horizontal pass first,
  rounded to uint8 after each pass. Matching PIL's intermediate rounding brings bicubic upsampling from
  up to 9 levels off PIL to at most 1-2 on a few pixels per thousand."""
  width_first = _resize_pass(image, tf.stack([tf.shape(image)[0], size[1]]), method)
  return _resize_pass(width_first, size, method)


def resize_to(image, resolution: int, interpolation: str, seed):
  size = [resolution, resolution]
  if interpolation != "random":
    return resize(image, size, interpolation)
  bicubic = _uniform([], _stage_seed(seed, _INTERPOLATION)) < 0.5
  return tf.cond(bicubic, lambda: resize(image, size, "bicubic"), lambda: resize(image, size, "bilinear"))


def color_jitter(image, strength: float, seed):
  """torchvision ColorJitter(b, c, s = strength) on a uint8 image: factors ~ U[max(0, 1 - s), 1 + s], the
  three adjustments in a random order, each PIL's ImageEnhance (Brightness, Contrast, Color)."""
  s = tf.random.experimental.stateless_split(seed, 2)
  factors = _uniform([3], s[0], max(0.0, 1.0 - strength), 1.0 + strength)
  order = tf.argsort(_uniform([3], s[1]))
  return color_jitter_with(image, factors, order)


def color_jitter_with(image, factors, order):
  """Applies brightness/contrast/saturation (indices 0/1/2) with `factors` in `order`."""
  ops = (ra.brightness, ra.contrast, ra.color)
  for i in range(3):
    which = order[i]
    current = image
    image = tf.switch_case(which, [lambda op=op, k=k, x=current: op(x, factors[k]) for k, op in enumerate(ops)])
    image = tf.ensure_shape(image, current.shape)
  return image


def normalize(image):
  """uint8 -> float32, ``(x / 255 - mean) / std``."""
  x = tf.cast(image, tf.float32) / 255.0
  return (x - tf.constant(MEAN, tf.float32)) / tf.constant(STD, tf.float32)


def random_erasing(image, probability: float, seed, area=(0.02, 1 / 3), aspect=(0.3, 1 / 0.3)):
  """timm RandomErasing, mode 'pixel', one box: with `probability`, up to 10 tries of area ~ U(area) and
  log-aspect ~ U(log aspect); the first box strictly smaller than the image is filled with N(0, 1) noise."""
  if probability <= 0:
    return image
  s = tf.random.experimental.stateless_split(seed, 6)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  total = tf.cast(height * width, tf.float64)
  target = total * _uniform([_ATTEMPTS], s[0], area[0], area[1])
  ratio = tf.exp(_uniform([_ATTEMPTS], s[1], math.log(aspect[0]), math.log(aspect[1])))
  h = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
  w = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
  fits = (w < width) & (h < height)
  first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
  h, w = h[first], w[first]
  top = _randint_inclusive(_uniform([], s[2]), height - h)
  left = _randint_inclusive(_uniform([], s[3]), width - w)
  erase = (_uniform([], s[4]) <= probability) & tf.reduce_any(fits)
  rows = tf.range(height)[:, None]
  cols = tf.range(width)[None, :]
  box = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w) & erase
  noise = tf.random.stateless_normal(shape, s[5], dtype=image.dtype)
  return tf.where(box[..., None], noise, image)


def train_transform(augment: Augment, resolution: int):
  """(encoded image, seed [2]) -> float32 (res, res, 3), the train augmentation described above."""
  spec = augment.randaugment_spec

  def transform(encoded, seed):
    image = decode_random_crop(encoded, augment.crop_scale, augment.crop_ratio, _stage_seed(seed, _CROP))
    image = resize_to(image, resolution, augment.interpolation, seed)
    if augment.flip:
      flip = _uniform([], _stage_seed(seed, _FLIP)) < 0.5
      image = tf.cond(flip, lambda: tf.image.flip_left_right(image), lambda: image)
    if spec is not None:
      image = ra.randaugment(image, spec, _stage_seed(seed, _RANDAUG), augment.interpolation)
    elif augment.color_jitter > 0:
      image = color_jitter(image, augment.color_jitter, _stage_seed(seed, _JITTER))
    image = normalize(tf.ensure_shape(image, [resolution, resolution, 3]))
    return random_erasing(image, augment.random_erasing, _stage_seed(seed, _ERASE))

  return transform


def eval_resize(image, resolution: int, crop_pct: float = EVAL_CROP_PCT):
  """timm eval: short side -> floor(res / crop_pct) (long side truncated, as torchvision), bicubic; centre crop."""
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  short = tf.minimum(height, width)
  target = eval_resize_size(resolution, crop_pct)
  scaled_long = tf.cast(target * tf.maximum(height, width) // short, tf.int32)
  new_h = tf.where(height <= width, target, scaled_long)
  new_w = tf.where(height <= width, scaled_long, target)
  image = resize(image, tf.stack([new_h, new_w]), "bicubic")
  # torchvision CenterCrop: offsets int(round((size - crop) / 2)), round half to even.
  top = tf.cast(tf.round(tf.cast(new_h - resolution, tf.float64) / 2.0), tf.int32)
  left = tf.cast(tf.round(tf.cast(new_w - resolution, tf.float64) / 2.0), tf.int32)
  return tf.ensure_shape(image[top:top + resolution, left:left + resolution], [resolution, resolution, 3])


def eval_transform(resolution: int, crop_pct: float = EVAL_CROP_PCT):
  """encoded image -> float32 (res, res, 3), timm's eval transform."""
  return lambda encoded: normalize(eval_resize(decode(encoded), resolution, crop_pct))
