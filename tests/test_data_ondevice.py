"""On-device augmentation and the resident-data schedule (`data_on_device`)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinynet_jax import data
from tinynet_jax.data import ondevice, schedule
from tinynet_jax.data.preprocessing import MEAN, STD
from tinynet_jax.errors import DataError

PLAIN = data.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, color_jitter=0.0)


def _images(n=4, size=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _normalised(images):
  return (images.astype(np.float32) / 255.0 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)


def test_the_whole_image_at_its_own_size_is_just_normalised():
  images = _images()
  out = ondevice.augment_batch(jnp.asarray(images), jnp.arange(4), jax.random.key(0), augment=PLAIN,
                               resolution=16)
  np.testing.assert_allclose(np.asarray(out), _normalised(images), atol=1e-4)


def test_crop_windows_stay_inside_the_image_and_follow_the_scale_and_ratio_ranges():
  scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
  windows = jax.vmap(lambda k: jnp.stack(ondevice.sample_crop(k, 40, 60, scale, ratio)))(
      jax.random.split(jax.random.key(1), 500))
  top, left, h, w = np.asarray(windows).T
  assert (top >= 0).all() and (left >= 0).all() and (top + h <= 40).all() and (left + w <= 60).all()
  area = h * w / (40 * 60)
  assert area.min() >= 0.08 * 0.9 and area.max() <= 1.0
  assert (w / h >= 0.7).all() and (w / h <= 1.45).all()  # the ratio range, up to rounding of small crops
  assert len(np.unique(top)) > 10 and len(np.unique(area.round(2))) > 20  # really random


def test_the_fallback_is_the_centre_crop_with_the_aspect_clamped():
  # A 10 x 100 strip cannot hold any crop of aspect <= 4/3 with 50%+ of its area: torchvision's fallback.
  top, left, h, w = (float(v) for v in ondevice.sample_crop(jax.random.key(0), 10, 100, (0.5, 1.0), (0.75, 4 / 3)))
  assert (h, w) == (10.0, 13.0) and top == 0.0 and left == (100 - 13) // 2


def test_flip_mirrors_about_half_of_the_images():
  images = _images(n=64)
  flip = data.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=True, color_jitter=0.0)
  out = np.asarray(ondevice.augment_batch(jnp.asarray(images), jnp.arange(64), jax.random.key(2), augment=flip,
                                          resolution=16))
  reference = _normalised(images)
  same = [np.allclose(o, r, atol=1e-4) for o, r in zip(out, reference)]
  mirrored = [np.allclose(o, r[:, ::-1], atol=1e-4) for o, r in zip(out, reference)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert 16 <= sum(mirrored) <= 48


def test_an_example_depends_only_on_its_position_not_on_its_batch():
  images = _images(n=3)
  augment = data.Augment()  # the paper's crop, flip and colour jitter
  key = jax.random.key(3)
  batch = ondevice.augment_batch(jnp.asarray(images), jnp.asarray([7, 8, 9]), key, augment=augment, resolution=12)
  alone = ondevice.augment_batch(jnp.asarray(images[1:2]), jnp.asarray([8]), key, augment=augment, resolution=12)
  np.testing.assert_allclose(np.asarray(batch[1]), np.asarray(alone[0]), atol=1e-5)
  assert batch.shape == (3, 12, 12, 3) and np.isfinite(np.asarray(batch)).all()
  other = ondevice.augment_batch(jnp.asarray(images[1:2]), jnp.asarray([9]), key, augment=augment, resolution=12)
  assert not np.allclose(np.asarray(other[0]), np.asarray(alone[0]))


def test_colour_jitter_changes_pixels_within_the_valid_range():
  images = _images(n=8)
  jitter = data.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False, color_jitter=0.4)
  out = np.asarray(ondevice.augment_batch(jnp.asarray(images), jnp.arange(8), jax.random.key(4), augment=jitter,
                                          resolution=16))
  low, high = _normalised(np.zeros((1, 1, 1, 3), np.uint8)), _normalised(np.full((1, 1, 1, 3), 255, np.uint8))
  assert (out >= low - 1e-4).all() and (out <= high + 1e-4).all()
  assert not np.allclose(out, _normalised(images), atol=1e-2)


@pytest.mark.parametrize("augment, needle", [(data.Augment(randaugment="rand-m9-mstd0.5"), "RandAugment"),
                                             (data.Augment(random_erasing=0.25), "random erasing")])
def test_host_only_augmentations_are_refused(augment, needle):
  with pytest.raises(DataError, match=needle):
    ondevice.check_augment(augment)


def test_the_resident_schedule_is_the_host_pipelines_schedule():
  n, batch = 37, 8
  host = schedule.IndexSchedule(5, n)
  for process_index in range(2):
    iterator = data.resident_index_iterator(n, global_batch_size=batch, seed=5, start_step=3,
                                            process_index=process_index, process_count=2)
    for step in (3, 4, 5):
      rows = next(iterator)
      positions = schedule.batch_positions(step, batch, process_index, 2)
      np.testing.assert_array_equal(rows["index"], host(positions))
      np.testing.assert_array_equal(rows["position"], positions)
      assert rows["index"].dtype == np.int32 and rows["position"].dtype == np.uint32


def test_synthetic_resident_arrays_are_uint8_images_of_the_requested_size():
  images, labels = data.resident_train_arrays("synthetic", size=12, num_train=20, num_classes=5)
  assert images.shape == (20, 12, 12, 3) and images.dtype == np.uint8
  assert labels.shape == (20,) and set(labels) <= set(range(5))


def test_digits_resident_arrays_are_the_stored_train_split():
  images, labels = data.resident_train_arrays("digits", size=32)
  info = data.dataset_info("digits")
  assert images.shape == (info.num_train, 32, 32, 3) and images.dtype == np.uint8
  assert np.bincount(labels).min() > 100 and images.max() == 255


@pytest.mark.parametrize("flip, jitter", [(False, 0.0), (True, 0.4)])
def test_the_whole_image_fast_path_equals_the_per_example_crop(flip, jitter, monkeypatch):
  """A pinned crop (scale and ratio 1) resizes the batch at once; it must equal the sampled-window path, with
  flips and jitter drawn as before."""
  images = jnp.asarray(_images(n=6, size=32))
  augment = data.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=flip, color_jitter=jitter)
  fast = ondevice.augment_batch(images, jnp.arange(6), jax.random.key(5), augment=augment, resolution=21)
  monkeypatch.setattr(ondevice, "whole_image_crop", lambda *args: False)
  slow = ondevice.augment_batch(images, jnp.arange(6), jax.random.key(5), augment=augment, resolution=21)
  assert fast.shape == (6, 21, 21, 3)
  np.testing.assert_allclose(np.asarray(fast), np.asarray(slow), atol=2e-5)


def test_the_fast_path_is_only_taken_when_the_crop_is_the_whole_image():
  assert ondevice.whole_image_crop(PLAIN, 32, 32)
  assert not ondevice.whole_image_crop(PLAIN, 32, 40)  # the ratio clamp crops a non-square image
  assert not ondevice.whole_image_crop(data.Augment(), 32, 32)  # the paper's random-resized crop
  assert not ondevice.whole_image_crop(data.Augment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                                                    interpolation="random"), 32, 32)
