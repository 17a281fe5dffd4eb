"""timm's RandAugment in TensorFlow, on uint8 HWC images, reproducing timm's PIL ops.

Semantics follow `timm.data.auto_augment` (`rand_augment_transform`, `_RAND_TRANSFORMS`, `LEVEL_TO_ARG`,
`AugmentOp`): each of ``n`` layers picks one of the 15 ops uniformly (with replacement), applies it with
probability ``p``, at magnitude ``m + N(0, mstd)`` clipped to [0, mmax]; signed ops flip their sign with
probability 1/2. Geometric ops fill with timm's mean colour and use the chosen interpolation (or a random
choice of bilinear/bicubic per op, like timm's 'random').

PIL's arithmetic is reproduced rather than approximated: `Image.blend`'s float32 arithmetic and
truncation (the enhance ops), the fixed-point RGB->L conversion, ImageOps' LUT formulas, the SMOOTH filter with
copied borders, and PIL's affine sampler (pixel-centre coordinates, a point outside the image gets the fill
colour, edge-clamped taps, PIL's a=-1 cubic). One deliberate difference: Posterize to 0 bits (magnitude < 2.5)
gives black where PIL raises.

All randomness is stateless (`tf.random.stateless_*` from the example's seed), so an op gives the same result
eagerly and inside tf.data.
"""
from __future__ import annotations

import math

from tinynet_jax.data.preprocessing import FILL
from tinynet_jax.data.types import RandAugmentSpec
from tinynet_jax.data.tfdata.tfenv import tf

_LEVEL_DENOM = 10.0

# RGB -> L as PIL computes it (Convert.c): (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
_L_WEIGHTS = (19595, 38470, 7471)


def _f64(x):
  # tf.cast of a Python float would go through float32 first and lose the bits PIL keeps.
  return tf.cast(x, tf.float64) if tf.is_tensor(x) else tf.constant(x, tf.float64)


def grayscale(image):
  """PIL ``convert('L')`` of a uint8 RGB image, as an int32 (H, W) array."""
  rgb = tf.cast(image, tf.int32)
  weighted = rgb[..., 0] * _L_WEIGHTS[0] + rgb[..., 1] * _L_WEIGHTS[1] + rgb[..., 2] * _L_WEIGHTS[2]
  return tf.bitwise.right_shift(weighted + 0x8000, 16)


def blend(degenerate, image, factor):
  """PIL ``Image.blend(degenerate, image, factor)``: float32 ``a + f * (b - a)``, clipped and truncated."""
  factor = tf.cast(factor, tf.float32)  # PIL takes alpha as a C float
  a = tf.cast(degenerate, tf.float32)
  b = tf.cast(image, tf.float32)
  return tf.cast(tf.clip_by_value(tf.floor(a + factor * (b - a)), 0.0, 255.0), tf.uint8)


# ---- colour ops (exact) ---------------------------------------------------------------------------------------

def auto_contrast(image):
  """ImageOps.autocontrast (cutoff 0): per channel, stretch [min, max] to [0, 255] through PIL's LUT."""
  x = _f64(image)
  lo = tf.reduce_min(x, axis=(0, 1))
  hi = tf.reduce_max(x, axis=(0, 1))
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  stretched = tf.clip_by_value(tf.math.floor(x * scale + (-lo * scale)), 0.0, 255.0)  # int() of a value >= 0
  return tf.cast(tf.where(hi > lo, stretched, x), tf.uint8)


def equalize(image):
  """ImageOps.equalize: per channel, the LUT ``(step // 2 + cumulative count) // step``."""
  def channel(c):
    values = tf.cast(c, tf.int32)
    hist = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256, dtype=tf.int64)
    last = hist[tf.reduce_max(values)]  # count of the highest value present
    step = (tf.reduce_sum(hist) - last) // 255
    safe = tf.maximum(step, 1)
    lut = (safe // 2 + tf.math.cumsum(hist, exclusive=True)) // safe
    lut = tf.cast(tf.minimum(lut, 255), tf.uint8)
    identity = tf.logical_or(tf.math.count_nonzero(hist) <= 1, step == 0)
    return tf.where(identity, c, tf.gather(lut, values))
  return tf.stack([channel(image[..., i]) for i in range(3)], axis=-1)


def invert(image):
  return 255 - image


def posterize(image, bits):
  """ImageOps.posterize: keep the top `bits` bits; 8 or more is the identity, 0 gives black."""
  bits = tf.cast(bits, tf.int32)
  mask = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.invert(tf.bitwise.left_shift(1, 8 - tf.minimum(bits, 8)) - 1),
                                        255), tf.uint8)
  return tf.where(bits >= 8, image, tf.bitwise.bitwise_and(image, mask))


def solarize(image, threshold):
  """ImageOps.solarize: invert values >= threshold."""
  x = tf.cast(image, tf.int32)
  return tf.cast(tf.where(x < tf.cast(threshold, tf.int32), x, 255 - x), tf.uint8)


def solarize_add(image, add, threshold=128):
  """timm's solarize_add: values below the threshold get `add` (saturating at 255)."""
  x = tf.cast(image, tf.int32)
  return tf.cast(tf.where(x < threshold, tf.minimum(x + tf.cast(add, tf.int32), 255), x), tf.uint8)


def color(image, factor):
  """ImageEnhance.Color: blend with the image's grey version."""
  gray = tf.cast(grayscale(image), tf.uint8)
  return blend(tf.stack([gray] * 3, axis=-1), image, factor)


def contrast(image, factor):
  """ImageEnhance.Contrast: blend with a flat image at the rounded mean grey level."""
  gray = grayscale(image)
  mean = tf.reduce_sum(tf.cast(gray, tf.int64)) / tf.cast(tf.size(gray), tf.int64)  # float64, as ImageStat
  level = tf.cast(tf.math.floor(mean + 0.5), tf.uint8)
  return blend(tf.fill(tf.shape(image), level), image, factor)


def brightness(image, factor):
  """ImageEnhance.Brightness: blend with black."""
  return blend(tf.zeros_like(image), image, factor)


def smooth(image):
  """ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, divided by 13) with PIL's float32 sum order and
  rounding; the one-pixel border is copied unchanged, as PIL does."""
  x = tf.cast(image, tf.float32)
  k1 = tf.constant(1 / 13, tf.float32)
  k5 = tf.constant(5 / 13, tf.float32)

  def row(r, centre):
    return r[:, :-2] * k1 + r[:, 1:-1] * centre + r[:, 2:] * k1

  below, middle, above = x[2:], x[1:-1], x[:-2]
  total = tf.zeros_like(middle[:, 1:-1]) + row(below, k1)
  total = total + row(middle, k5)
  total = total + row(above, k1)
  inner = tf.cast(tf.clip_by_value(tf.floor(total + 0.5), 0.0, 255.0), tf.uint8)
  inner = tf.concat([image[1:-1, :1], inner, image[1:-1, -1:]], axis=1)
  smoothed = tf.concat([image[:1], inner, image[-1:]], axis=0)
  small = tf.logical_or(tf.shape(image)[0] < 3, tf.shape(image)[1] < 3)
  return tf.cond(small, lambda: image, lambda: smoothed)


def sharpness(image, factor):
  """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image."""
  return blend(smooth(image), image, factor)


# ---- geometric ops (PIL's affine sampler) ----------------------------------------------------------------------

def affine(image, matrix, bicubic, fill=FILL):
  """PIL ``image.transform(size, AFFINE, matrix, resample, fillcolor=fill)``.

  Output pixel (x, y) reads the input at ``(a x' + b y' + c, d x' + e y' + f)`` with ``x' = x + 0.5``, etc.;
  points outside the image get `fill`; inside, bilinear or PIL's bicubic (a = -1) over edge-clamped taps,
  computed in float64 in PIL's order and truncated to uint8 like PIL. `bicubic` may be a tensor.
  """
  a, b, c, d, e, f = (_f64(matrix[i]) for i in range(6))
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float64) + 0.5, tf.range(width, dtype=tf.float64) + 0.5,
                       indexing="ij")
  xin = a * xs + b * ys + c
  yin = d * xs + e * ys + f
  inside = (xin >= 0.0) & (xin < _f64(width)) & (yin >= 0.0) & (yin < _f64(height))
  xin, yin = xin - 0.5, yin - 0.5
  x0, y0 = tf.floor(xin), tf.floor(yin)
  dx, dy = (xin - x0)[..., None], (yin - y0)[..., None]
  x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
  flat = tf.reshape(image, [-1, 3])

  def lerp(v1, v2, t):
    return v1 + (v2 - v1) * t

  def cubic(v1, v2, v3, v4, t):
    p2 = -v1 + v3
    p3 = 2.0 * (v1 - v2) + v3 - v4
    p4 = -v1 + v2 - v3 + v4
    return v2 + t * (p2 + t * (p3 + t * p4))

  def taps(offsets):  # one gather for the whole (len(offsets) x len(offsets)) neighbourhood
    ys = tf.stack([tf.clip_by_value(y0 + j, 0, height - 1) for j in offsets])[:, None]
    xs = tf.stack([tf.clip_by_value(x0 + i, 0, width - 1) for i in offsets])[None, :]
    return _f64(tf.gather(flat, ys * width + xs))  # (rows, cols, H, W, 3)

  def linear_sample():
    t = taps((0, 1))
    rows = lerp(t[:, 0], t[:, 1], dx)
    return lerp(rows[0], rows[1], dy)

  def cubic_sample():
    t = taps((-1, 0, 1, 2))
    rows = cubic(t[:, 0], t[:, 1], t[:, 2], t[:, 3], dx)  # all four rows at once, along x
    return cubic(rows[0], rows[1], rows[2], rows[3], dy)

  value = tf.cond(tf.cast(bicubic, tf.bool), cubic_sample, linear_sample)
  value = tf.cast(tf.floor(tf.clip_by_value(value, 0.0, 255.0)), tf.uint8)
  return tf.where(inside[..., None], value, tf.constant(fill, tf.uint8))


def rotate_matrix(height, width, degrees):
  """The matrix PIL's ``rotate(degrees)`` uses: about the centre, entries rounded to 15 decimals."""
  cx, cy = _f64(width) / 2.0, _f64(height) / 2.0
  angle = -_f64(degrees) * (math.pi / 180.0)

  def round15(v):
    return tf.round(v * 1e15) / 1e15

  cos, sin, msin = round15(tf.cos(angle)), round15(tf.sin(angle)), round15(-tf.sin(angle))
  return [cos, sin, cos * -cx + sin * -cy + 0.0 + cx, msin, cos, msin * -cx + cos * -cy + 0.0 + cy]


def _shear_x_matrix(height, width, factor):
  return [1.0, factor, 0.0, 0.0, 1.0, 0.0]


def _shear_y_matrix(height, width, factor):
  return [1.0, 0.0, 0.0, factor, 1.0, 0.0]


def _translate_x_matrix(height, width, pct):
  return [1.0, 0.0, _f64(pct) * _f64(width), 0.0, 1.0, 0.0]  # timm: pixels = pct * width


def _translate_y_matrix(height, width, pct):
  return [1.0, 0.0, 0.0, 0.0, 1.0, _f64(pct) * _f64(height)]


# ---- magnitude -> argument (timm LEVEL_TO_ARG, computed in float64 like Python) ---------------------------------

def _signed(value, negate):
  return tf.where(tf.cast(negate, tf.bool), -value, value)


def _level(m):
  return _f64(m) / _LEVEL_DENOM


def _int(v):
  return tf.cast(tf.floor(v), tf.int32)  # Python int() of a non-negative float


def _enhance_arg(m, negate):
  return _level(m) * 1.8 + 0.1


def _enhance_increasing_arg(m, negate):
  return tf.maximum(0.1, 1.0 + _signed(_level(m) * 0.9, negate))


def _posterize_arg(m, negate):
  return _int(_level(m) * 4)


def _solarize_arg(m, negate):
  return tf.minimum(256, _int(_level(m) * 256))


# Geometric ops: name -> (matrix(height, width, arg), level_to_arg(magnitude, negate)).
GEOMETRIC = {
    "Rotate": (rotate_matrix, lambda m, neg: _signed(_level(m) * 30.0, neg)),
    "ShearX": (_shear_x_matrix, lambda m, neg: _signed(_level(m) * 0.3, neg)),
    "ShearY": (_shear_y_matrix, lambda m, neg: _signed(_level(m) * 0.3, neg)),
    "TranslateXRel": (_translate_x_matrix, lambda m, neg: _signed(_level(m) * 0.45, neg)),
    "TranslateYRel": (_translate_y_matrix, lambda m, neg: _signed(_level(m) * 0.45, neg)),
}
# Colour ops: name -> (op(image, arg), level_to_arg(magnitude, negate) or None).
COLOUR = {
    "AutoContrast": (lambda x, _: auto_contrast(x), None),
    "Equalize": (lambda x, _: equalize(x), None),
    "Invert": (lambda x, _: invert(x), None),
    "Posterize": (posterize, _posterize_arg),
    "PosterizeIncreasing": (posterize, lambda m, neg: 4 - _posterize_arg(m, neg)),
    "Solarize": (solarize, _solarize_arg),
    "SolarizeIncreasing": (solarize, lambda m, neg: 256 - _solarize_arg(m, neg)),
    "SolarizeAdd": (solarize_add, lambda m, neg: tf.minimum(128, _int(_level(m) * 110))),
    "Color": (color, _enhance_arg),
    "ColorIncreasing": (color, _enhance_increasing_arg),
    "Contrast": (contrast, _enhance_arg),
    "ContrastIncreasing": (contrast, _enhance_increasing_arg),
    "Brightness": (brightness, _enhance_arg),
    "BrightnessIncreasing": (brightness, _enhance_increasing_arg),
    "Sharpness": (sharpness, _enhance_arg),
    "SharpnessIncreasing": (sharpness, _enhance_increasing_arg),
}

# timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, in timm's order.
RAND_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
                   "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
                   "TranslateYRel")
RAND_INCREASING_TRANSFORMS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                              "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                              "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
                              "TranslateXRel", "TranslateYRel")


def _matrix(name: str, image, magnitude, negate):
  matrix_fn, level_to_arg = GEOMETRIC[name]
  shape = tf.shape(image)
  return tf.stack([_f64(v) for v in matrix_fn(shape[0], shape[1], level_to_arg(magnitude, negate))])


def _colour(name: str, image, magnitude, negate):
  op, level_to_arg = COLOUR[name]
  return op(image, level_to_arg(magnitude, negate) if level_to_arg is not None else None)


def apply_op(image, name: str, magnitude, negate=False, bicubic=True, fill=FILL):
  """One RandAugment op at a given magnitude and sign, deterministically (what the tests compare with timm)."""
  if name in GEOMETRIC:
    return affine(image, _matrix(name, image, magnitude, negate), bicubic, fill)
  return _colour(name, image, magnitude, negate)


def randaugment(image, spec: RandAugmentSpec, seed, interpolation: str = "bicubic", fill=FILL):
  """Applies ``spec.num_layers`` random ops to a uint8 image; every draw comes from `seed` (shape [2]).

  One layer is traced once (a while loop), and the five geometric ops share one affine sampler whose matrix a
  switch picks, which keeps the graph (and its tracing time) small.
  """
  names = RAND_INCREASING_TRANSFORMS if spec.increasing else RAND_TRANSFORMS
  geometric = [n for n in names if n in GEOMETRIC]
  colour = [n for n in names if n in COLOUR]
  is_geometric = tf.constant([n in GEOMETRIC for n in names])
  branch_of = tf.constant([geometric.index(n) if n in GEOMETRIC else colour.index(n) for n in names])

  def layer(i, image):
    s = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, i), 5)
    which = tf.random.stateless_uniform([], s[0], 0, len(names), dtype=tf.int32)
    applied = tf.random.stateless_uniform([], s[1], dtype=tf.float64) <= spec.prob
    if math.isinf(spec.magnitude_std):
      magnitude = tf.random.stateless_uniform([], s[2], 0.0, spec.magnitude, dtype=tf.float64)
    elif spec.magnitude_std > 0:
      magnitude = spec.magnitude + spec.magnitude_std * tf.random.stateless_normal([], s[2], dtype=tf.float64)
    else:
      magnitude = tf.constant(spec.magnitude, tf.float64)
    magnitude = tf.clip_by_value(magnitude, 0.0, spec.magnitude_max)
    negate = tf.random.stateless_uniform([], s[3], dtype=tf.float64) > 0.5
    if interpolation == "random":
      bicubic = tf.random.stateless_uniform([], s[4], dtype=tf.float64) < 0.5
    else:
      bicubic = tf.constant(interpolation == "bicubic")
    branch = branch_of[which]

    def geometric_op():
      matrix = tf.switch_case(branch, [lambda n=n: _matrix(n, image, magnitude, negate) for n in geometric])
      return affine(image, matrix, bicubic, fill)

    def colour_op():
      return tf.switch_case(branch, [lambda n=n: _colour(n, image, magnitude, negate) for n in colour])

    out = tf.cond(applied, lambda: tf.cond(is_geometric[which], geometric_op, colour_op), lambda: image)
    return i + 1, tf.ensure_shape(out, image.shape)

  _, image = tf.while_loop(lambda i, _: i < spec.num_layers, layer, (tf.constant(0), image))
  return image
