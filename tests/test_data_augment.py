"""Augmentation ops against their references: timm's RandAugment ops (PIL), torchvision's ColorJitter, timm's
RandomResizedCrop fallback and eval transform, PIL's resize; and each op eagerly == inside tf.data."""
import math
import random

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_datasets")
from PIL import Image  # noqa: E402

from tinynet_jax.data.tfdata import augment as A  # noqa: E402
from tinynet_jax.data.tfdata import randaugment as ra  # noqa: E402
from tinynet_jax.data.preprocessing import FILL, MEAN, STD  # noqa: E402
from tinynet_jax.data.types import Augment, parse_randaugment  # noqa: E402
from tinynet_jax.data.tfdata.tfenv import tf  # noqa: E402

IMAGENET_FILL = (124, 116, 104)  # timm: tuple(min(255, round(255 * x)) for x in IMAGENET_DEFAULT_MEAN)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
  """A real photograph (scikit-learn's bundled china.jpg), shrunk to a non-square 48x64."""
  from sklearn.datasets import load_sample_image
  return Image.fromarray(load_sample_image("china.jpg")).resize((64, 48), Image.BICUBIC)


def as_tf(image):
  return tf.constant(np.asarray(image))


def test_fill_colour_is_timms():
  assert FILL == IMAGENET_FILL


COLOUR_OPS = ["AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "SolarizeAdd", "Color", "Contrast",
              "Brightness", "Sharpness", "PosterizeIncreasing", "SolarizeIncreasing", "ColorIncreasing",
              "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing"]
GEOMETRIC_OPS = ["Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"]


def timm_op(image, name, magnitude, negate, bicubic):
  """timm's AugmentOp at a fixed magnitude (std 0, p=1), with the sign forced through `random.random`."""
  aa = pytest.importorskip("timm.data.auto_augment")
  hparams = dict(translate_const=int(0.45 * min(image.size)), img_mean=IMAGENET_FILL,
                 interpolation=Image.BICUBIC if bicubic else Image.BILINEAR)
  op = aa.AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=hparams)
  original = random.random
  random.random = (lambda: 0.9) if negate else (lambda: 0.1)  # _randomly_negate: -v if random() > 0.5
  try:
    return np.asarray(op(image))
  finally:
    random.random = original


@pytest.mark.parametrize("magnitude", [9.0, 4.3])
@pytest.mark.parametrize("name", COLOUR_OPS)
def test_colour_ops_equal_timm_exactly(photo, name, magnitude):
  """Tolerance 0: PIL's integer LUTs, fixed-point grey conversion and float32 blend are reproduced exactly."""
  for negate in (False, True):
    expected = timm_op(photo, name, magnitude, negate, bicubic=True)
    got = ra.apply_op(as_tf(photo), name, magnitude, negate).numpy()
    np.testing.assert_array_equal(got, expected, err_msg=f"{name} m={magnitude} negate={negate}")


@pytest.mark.parametrize("magnitude", [9.0, 4.3])
@pytest.mark.parametrize("name", GEOMETRIC_OPS)
def test_geometric_ops_match_timm(photo, name, magnitude):
  """PIL's affine sampler is reproduced in float64; the tolerance (at most 1 level on at most 0.5% of the values)
  only allows for last-bit differences in the rotation matrix (PIL rounds it to 15 decimals with Python's
  correctly rounded `round`, we with tf.round) flipping a truncation. The fill colour must match exactly."""
  for negate in (False, True):
    for bicubic in (True, False):
      expected = timm_op(photo, name, magnitude, negate, bicubic).astype(int)
      got = ra.apply_op(as_tf(photo), name, magnitude, negate, bicubic).numpy().astype(int)
      diff = np.abs(got - expected)
      label = f"{name} m={magnitude} negate={negate} bicubic={bicubic}"
      assert diff.max() <= 1 and np.mean(diff > 0) <= 0.005, label
      assert np.mean(np.all(expected == IMAGENET_FILL, axis=-1)) > 0.01, label  # the op really moved pixels


def test_posterize_zero_bits_is_black_not_an_error(photo):
  assert not ra.posterize(as_tf(photo), 0).numpy().any()
  np.testing.assert_array_equal(ra.posterize(as_tf(photo), 8).numpy(), np.asarray(photo))


@pytest.mark.parametrize("name", COLOUR_OPS[:10] + GEOMETRIC_OPS)
def test_ops_equal_eagerly_and_in_tf_data(photo, name):
  """The issue's acceptance criterion: every RandAugment op gives the same result eagerly and in tf.data."""
  grid = [(m, neg, cub) for m in (2.0, 7.3, 9.0, 10.0) for neg in (False, True) for cub in (False, True)]
  m, neg, cub = (np.array(v) for v in zip(*grid))
  image = as_tf(photo)
  eager = [ra.apply_op(image, name, tf.constant(a, tf.float64), tf.constant(b), tf.constant(c)).numpy()
           for a, b, c in grid]
  ds = tf.data.Dataset.from_tensor_slices((m, neg, cub)).map(
      lambda a, b, c: ra.apply_op(image, name, a, b, c), num_parallel_calls=4, deterministic=True)
  for e, d in zip(eager, ds.as_numpy_iterator()):
    np.testing.assert_array_equal(e, d)


def train_examples(photo, augment, resolution=32, count=12):
  """The full train transform on a JPEG, eagerly and through a parallel tf.data map, for several seeds."""
  import io
  buffer = io.BytesIO()
  photo.save(buffer, "JPEG", quality=95)
  encoded = tf.constant(buffer.getvalue())
  transform = A.train_transform(augment, resolution)
  seeds = np.stack([np.full(count, 7, np.int64), np.arange(count, dtype=np.int64)], axis=1)
  eager = np.stack([transform(encoded, tf.constant(s)).numpy() for s in seeds])
  ds = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: transform(encoded, s), num_parallel_calls=4,
                                                     deterministic=True)
  return eager, np.stack(list(ds.as_numpy_iterator()))


def test_train_transform_equal_eagerly_and_in_tf_data(photo):
  augment = Augment(randaugment="rand-m9-mstd0.5", random_erasing=0.5, interpolation="random")
  eager, mapped = train_examples(photo, augment)
  np.testing.assert_array_equal(eager, mapped)
  assert eager.shape == (12, 32, 32, 3) and eager.dtype == np.float32
  assert len({e.tobytes() for e in eager}) == 12  # every seed gives a different example
  eager, mapped = train_examples(photo, Augment(), count=6)  # the paper's recipe: crop, flip, colour jitter
  np.testing.assert_array_equal(eager, mapped)


def test_randaugment_probability_zero_is_identity_and_layers_change_images(photo):
  image = as_tf(photo)
  seed = tf.constant([1, 2], tf.int64)
  np.testing.assert_array_equal(ra.randaugment(image, parse_randaugment("rand-m9-n2-p0"), seed).numpy(),
                                np.asarray(photo))
  changed = [not np.array_equal(ra.randaugment(image, parse_randaugment("rand-m9-n2-p1.0"),
                                               tf.constant([1, s], tf.int64)).numpy(), np.asarray(photo))
             for s in range(10)]
  assert sum(changed) >= 8


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_color_jitter_equals_torchvision(photo, order):
  """Given the factors and order, our jitter is torchvision's adjust_brightness/contrast/saturation on PIL."""
  F = pytest.importorskip("torchvision.transforms.functional")
  factors = (0.7321, 1.2893, 0.6517)
  expected = photo
  for i in order:
    expected = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation)[i](expected, factors[i])
  got = A.color_jitter_with(as_tf(photo), tf.constant(factors, tf.float64), tf.constant(order)).numpy()
  np.testing.assert_array_equal(got, np.asarray(expected))


@pytest.mark.parametrize("size", [(48, 64), (64, 48), (50, 50), (20, 90)])
def test_crop_fallback_equals_timm(size):
  """When all 10 tries fail (scale > 1 here), the window is timm's centre crop with the aspect clamped."""
  timm_transforms = pytest.importorskip("timm.data.transforms")
  height, width = size
  scale, ratio = (1.5, 2.0), (3 / 4, 4 / 3)
  expected = timm_transforms.RandomResizedCropAndInterpolation.get_params(
      Image.new("RGB", (width, height)), scale, ratio)
  got = A.sample_crop(height, width, scale, ratio, tf.constant([0, 1], tf.int64))
  assert tuple(int(v) for v in got) == expected


def test_crop_windows_follow_scale_and_ratio():
  scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
  areas, aspects = [], []
  for s in range(300):
    top, left, h, w = (int(v) for v in A.sample_crop(120, 90, scale, ratio, tf.constant([3, s], tf.int64)))
    assert 0 <= top <= 120 - h and 0 <= left <= 90 - w and h > 0 and w > 0
    areas.append(h * w / (120 * 90))
    aspects.append(w / h)
  areas, aspects = np.array(areas), np.array(aspects)
  assert areas.min() >= 0.07 and areas.max() <= 1.0 and 0.4 < areas.mean() < 0.65  # U(0.08, 1): mean 0.54
  assert aspects.min() >= 0.7 and aspects.max() <= 1.45
  assert np.mean(np.log(aspects) > 0) == pytest.approx(0.5, abs=0.12)


@pytest.mark.parametrize("size", [(37, 53), (224, 224), (96, 80)])
@pytest.mark.parametrize("method, max_changed", [("bicubic", 0.005), ("bilinear", 0.05)])
def test_resize_matches_pil(photo, size, method, max_changed):
  """Antialiased two-pass resize vs PIL: within 2 levels everywhere; equal on >= 99.5% of the values for
  bicubic (the default). Bilinear upsampling by rational factors lands many values exactly on .5, which PIL's
  22-bit fixed-point weights round either way, hence the looser 5%."""
  expected = np.asarray(photo.resize(size[::-1], {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[method]))
  got = A.resize(as_tf(photo), size, method).numpy()
  diff = np.abs(got.astype(int) - expected.astype(int))
  assert got.shape == (*size, 3) and diff.max() <= 2 and np.mean(diff > 0) < max_changed


def test_normalize_uses_imagenet_mean_and_std():
  pixels = tf.constant([[[0, 0, 0], [255, 255, 255], [124, 116, 104]]], tf.uint8)
  got = A.normalize(pixels).numpy()[0]
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # timm IMAGENET_DEFAULT_*
  np.testing.assert_allclose(got[0], -mean / std, rtol=1e-6)
  np.testing.assert_allclose(got[1], (1 - mean) / std, rtol=1e-6)
  np.testing.assert_allclose(got[2], 0.0, atol=0.01)  # the fill colour sits at the mean
  assert MEAN == tuple(mean) and STD == tuple(std)


@pytest.mark.parametrize("resolution, size, crop_pct", [(32, (48, 64), 0.875), (24, (64, 48), 0.875),
                                                       (40, (50, 50), 0.875), (32, (48, 64), 1.0)])
def test_eval_transform_equals_timm(photo, resolution, size, crop_pct):
  """timm's eval transform (short side to floor(res / crop_pct), bicubic, centre crop) on the same image."""
  factory = pytest.importorskip("timm.data.transforms_factory")
  import io
  image = photo.resize(size[::-1], Image.BICUBIC)
  reference = factory.create_transform(resolution, is_training=False, interpolation="bicubic", crop_pct=crop_pct)
  expected = reference(image).numpy().transpose(1, 2, 0)
  buffer = io.BytesIO()
  image.save(buffer, "PNG")
  got = A.eval_transform(resolution, crop_pct)(tf.constant(buffer.getvalue())).numpy()
  assert got.shape == (resolution, resolution, 3) == expected.shape
  levels = np.abs(got - expected) * np.array(STD) * 255  # back to uint8 levels
  assert levels.max() < 2.01 and np.mean(levels > 0.5) < 0.03
  assert math.floor(resolution / crop_pct) == A.eval_resize_size(resolution, crop_pct)


def test_random_erasing_is_timms_pixel_mode():
  image = tf.zeros([40, 30, 3], tf.float32)
  erased = 0
  for s in range(40):
    out = A.random_erasing(image, 1.0, tf.constant([9, s], tf.int64)).numpy()
    rows, cols = np.nonzero(np.any(out != 0, axis=-1))
    if not len(rows):
      continue
    erased += 1
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert len(rows) == h * w  # one solid box
    assert h < 40 and w < 30 and 0.015 <= h * w / 1200 <= 0.36 and 0.2 <= h / w <= 4.5
    box = out[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    if box.size > 300:
      assert abs(box.mean()) < 0.25 and 0.8 < box.std() < 1.2  # per-pixel N(0, 1)
  assert erased >= 38  # up to 10 tries almost always find a box
  np.testing.assert_array_equal(A.random_erasing(image, 0.0, tf.constant([9, 0], tf.int64)).numpy(), 0)
  kept = sum(np.any(A.random_erasing(image, 0.25, tf.constant([5, s], tf.int64)).numpy() != 0) for s in range(200))
  assert 30 <= kept <= 72  # ~ Binomial(200, 0.25)


def test_flip_and_no_flip(photo):
  """flip=False never mirrors; flip=True mirrors about half the examples (digits must be able to turn it off)."""
  import dataclasses
  import io
  buffer = io.BytesIO()
  photo.save(buffer, "PNG")
  encoded = tf.constant(buffer.getvalue())
  # scale 1 at aspect 3/4 never fits a 48x64 image: timm's fallback gives the same centre 48x36 crop every time.
  whole = Augment(crop_scale=(1.0, 1.0), crop_ratio=(0.75, 0.75), color_jitter=0.0)
  seeds = [tf.constant([0, s], tf.int64) for s in range(24)]
  plain = [A.train_transform(dataclasses.replace(whole, flip=False), 24)(encoded, s).numpy() for s in seeds]
  flipped = [A.train_transform(whole, 24)(encoded, s).numpy() for s in seeds]
  assert all(np.array_equal(plain[0], p) for p in plain)
  mirrored = [np.array_equal(f, plain[0][:, ::-1]) for f in flipped]
  assert all(m or np.array_equal(f, plain[0]) for f, m in zip(flipped, mirrored))
  assert 6 <= sum(mirrored) <= 18
