"""tinynet_jax.data without TensorFlow: the public API, the 'synthetic' source and the determinism contract."""
import dataclasses
import numpy as np
import pytest

from tinynet_jax import data
from tinynet_jax.data import schedule
from tinynet_jax.errors import DataError

SYN = dict(num_classes=7, num_train=50, num_eval=23)


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_import_needs_no_tensorflow_and_synthetic_runs_without_it(run_python):
  """A GPU box without TF: importing the package and reading 'synthetic' must never import TensorFlow."""
  code = r"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in ('tensorflow', 'tensorflow_datasets'):
      raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, Block())
from tinynet_jax import data
batch = next(data.train_iterator('synthetic', global_batch_size=4, resolution=8, seed=0, num_train=10))
ev = list(data.eval_iterator('synthetic', global_batch_size=4, resolution=8, num_eval=5))
print(batch['image'].shape, sum(b['mask'].sum() for b in ev), data.dataset_info('synthetic').num_classes)
try:
  data.dataset_info('digits')
except data.DataError as e:
  print('DataError', e)
"""
  result = run_python("-c", code)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0] == "(4, 8, 8, 3) 5.0 1000"
  assert lines[1].startswith("DataError dataset 'digits' needs the data extra")


def test_public_interface():
  assert data.DATASETS == ("digit_mosaic", "digits", "imagenet2012", "imagenet100", "imagenet100_cmc",
                           "synthetic")
  fields = {f.name: f.default for f in dataclasses.fields(data.Augment)}
  assert fields == dict(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip=True, color_jitter=0.4,
                        randaugment=None, random_erasing=0.0, interpolation="bicubic")
  assert [f.name for f in dataclasses.fields(data.DatasetInfo)] == [
      "name", "num_classes", "num_train", "num_eval", "label_names"]
  with pytest.raises(dataclasses.FrozenInstanceError):
    data.Augment().flip = False
  # Config lists become tuples, so an Augment built from a ConfigDict stays hashable.
  assert hash(data.Augment(crop_scale=[0.35, 1.0])) == hash(data.Augment(crop_scale=(0.35, 1.0)))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(crop_scale=(0.5, 0.1)), "crop_scale"),
    (dict(crop_ratio=(0, 1)), "crop_ratio"),
    (dict(color_jitter=-1), "color_jitter"),
    (dict(random_erasing=1.5), "random_erasing"),
    (dict(interpolation="lanczos"), "interpolation"),
    (dict(randaugment="rand-m9-x3"), "x3"),
    (dict(randaugment="autoaug-v0"), "rand-m9"),
])
def test_bad_augment_is_a_data_error(kwargs, needle):
  with pytest.raises(DataError, match=needle):
    data.Augment(**kwargs)


def test_randaugment_strings_parse_like_timm():
  spec = data.Augment(randaugment="rand-m9-mstd0.5").randaugment_spec
  assert (spec.num_layers, spec.magnitude, spec.magnitude_std, spec.prob, spec.magnitude_max) == (2, 9, 0.5, 0.5, 10)
  spec = data.Augment(randaugment="rand-n3-m7-p0.8-mstd101-mmax12-inc1").randaugment_spec
  assert (spec.num_layers, spec.magnitude, spec.prob, spec.magnitude_max, spec.increasing) == (3, 7, 0.8, 12, True)
  assert spec.magnitude_std == float("inf")  # timm: mstd > 100 means uniform sampling


@pytest.mark.parametrize("call, needle", [
    (lambda: data.train_iterator("synthetic", global_batch_size=12, resolution=8, seed=0, process_count=8),
     "does not divide evenly over 8"),
    (lambda: data.train_iterator("synthetic", global_batch_size=8, resolution=8, seed=0, process_index=2,
                                 process_count=2), "process_index"),
    (lambda: data.eval_iterator("synthetic", global_batch_size=8, resolution=0), "resolution"),
    (lambda: data.train_iterator("synthetic", global_batch_size=8, resolution=8, seed=0, start_step=-1),
     "start_step"),
    (lambda: data.dataset_info("synthetic", num_clases=3), "num_clases"),
    (lambda: data.dataset_info("synthetic", num_train=0), "num_train"),
])
def test_bad_arguments_are_one_line_data_errors(call, needle):
  with pytest.raises(DataError, match=needle) as info:
    call()
  assert "\n" not in str(info.value)


def _splitmix64(x):
  """splitmix64 on Python ints, written from its definition (an independent check of the numpy version)."""
  mask = (1 << 64) - 1
  x = (x + 0x9E3779B97F4A7C15) & mask
  x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
  x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
  return x ^ (x >> 31)


def _hash(*values):
  h = 0
  for v in values:
    h = _splitmix64(h ^ _splitmix64(v % (1 << 64)))
  return h


def test_schedule_permutations_follow_the_documented_hash():
  """Epoch order = argsort of hash(seed_key(seed), epoch, index): version independent, recomputed here."""
  for seed, epoch in [(0, 0), (0, 1), (7, 3), (-3, 2)]:
    key = _hash(seed, 0) >> 1
    assert schedule.seed_key(seed) == key
    expected = sorted(range(37), key=lambda i: (_hash(key, epoch, i), i))
    assert schedule.epoch_permutation(seed, epoch, 37).tolist() == expected
  assert schedule.epoch_permutation(1, 0, 97).tolist() != schedule.epoch_permutation(0, 0, 97).tolist()


def test_eval_split_covers_every_example_once():
  for n in (1, 7, 23, 100):
    for count in (1, 2, 3, 8):
      ranges = [schedule.even_split(n, p, count) for p in range(count)]
      assert ranges[0][0] == 0 and ranges[-1][1] == n
      assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
      assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1


def test_synthetic_batches_shapes_and_info():
  assert data.dataset_info("synthetic", **SYN) == data.DatasetInfo("synthetic", 7, 50, 23)
  assert data.dataset_info("synthetic") == data.DatasetInfo("synthetic", 1000, 1_281_167, 50_000)
  batch = next(data.train_iterator("synthetic", global_batch_size=6, resolution=12, seed=1, **SYN))
  assert batch["image"].shape == (6, 12, 12, 3) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (6,) and batch["label"].dtype == np.int32
  assert batch["label"].min() >= 0 and batch["label"].max() < 7


def test_synthetic_epochs_visit_every_example_once():
  it = data.train_iterator("synthetic", global_batch_size=10, resolution=4, seed=3, **SYN)
  images = np.concatenate([b["image"] for b in take(it, 10)])  # two epochs of 50
  first, second = images[:50].reshape(50, -1), images[50:].reshape(50, -1)
  key = lambda rows: sorted(map(bytes, rows.view(np.uint8)))  # noqa: E731
  assert key(first) == key(second)  # same 50 examples ...
  assert not np.array_equal(first, second)  # ... in a different order


@pytest.mark.parametrize("count", [2, 3])
def test_synthetic_process_split_and_resume(count):
  kw = dict(global_batch_size=6, resolution=4, seed=5, **SYN)
  one = take(data.train_iterator("synthetic", **kw), 12)
  parts = [take(data.train_iterator("synthetic", process_index=p, process_count=count, **kw), 12)
           for p in range(count)]
  for k in range(12):
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([part[k][key] for part in parts]), one[k][key])
  resumed = take(data.train_iterator("synthetic", start_step=9, **kw), 3)
  for k in range(3):
    np.testing.assert_array_equal(resumed[k]["image"], one[9 + k]["image"])
  assert not np.array_equal(one[0]["image"], take(data.train_iterator("synthetic", **dict(kw, seed=6)), 1)[0]["image"])


def eval_rows(name, count, global_batch_size, **kw):
  """Per process: the list of batches; checks the shared batch count and zeroed padding."""
  per_process = [list(data.eval_iterator(name, global_batch_size=global_batch_size, process_index=p,
                                         process_count=count, **kw)) for p in range(count)]
  assert len({len(batches) for batches in per_process}) == 1
  real = []
  for batches in per_process:
    for b in batches:
      assert b["mask"].dtype == np.float32 and b["image"].dtype == np.float32 and b["label"].dtype == np.int32
      pad = b["mask"] == 0
      assert not b["image"][pad].any() and not b["label"][pad].any()
      real.extend((img.tobytes(), int(lab)) for img, lab in zip(b["image"][~pad], b["label"][~pad]))
  return per_process, real


@pytest.mark.parametrize("count, global_batch_size", [(1, 4), (2, 4), (3, 6), (3, 30)])
def test_synthetic_eval_counts_every_example_once(count, global_batch_size):
  per_process, real = eval_rows("synthetic", count, global_batch_size, resolution=4, **SYN)
  _, reference = eval_rows("synthetic", 1, 1, resolution=4, **SYN)
  assert real == reference and len(real) == 23
  local = global_batch_size // count
  assert len(per_process[0]) == -(-(-(-23 // count)) // local)
