"""TFDS-backed datasets: digits (prepared offline), ImageNet and CIFAR-10 under tfds mock data, ImageNet-100 built
from a fake ImageNet, the three read modes (in memory, array_record, streaming) and their determinism."""
import collections
import hashlib
import io
import os

import numpy as np
import pytest

pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("sklearn")

from tinynet_jax import data  # noqa: E402
from tinynet_jax.data.tfdata import builders, digits, imagenet100, sources  # noqa: E402
from tinynet_jax.data.tfdata.tfenv import tf  # noqa: E402
from tinynet_jax.errors import DataError  # noqa: E402

# What the trainer's digits config passes, plus everything random we have, to exercise the contract fully.
HEAVY = data.Augment(flip=True, crop_scale=(0.35, 1.0), color_jitter=0.0, randaugment="rand-m9-mstd0.5",
                     random_erasing=0.25, interpolation="random")
LIGHT = data.Augment(flip=False, crop_scale=(0.35, 1.0), color_jitter=0.0)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  data.dataset_info("digits", path)  # prepares it (a few seconds, offline)
  return path


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---- digits --------------------------------------------------------------------------------------------------

def test_digits_sizes_balance_and_content(digits_dir):
  from sklearn.datasets import load_digits
  reference = load_digits()
  info = data.dataset_info("digits", digits_dir)
  assert info == data.DatasetInfo("digits", 10, 1438, 359, tuple("0123456789"))
  builder = digits.builder(digits_dir)
  split_rows = {}
  for split in ("train", "validation"):
    rows, labels = [], []
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      row = int(ex["row"])
      assert ex["image"].shape == (32, 32, 3) and ex["label"] == reference.target[row]
      # The stored image is the sklearn digit, 4x nearest-upsampled, levels 0..16 -> 0..255.
      np.testing.assert_array_equal(ex["image"][::4, ::4, 0], (reference.images[row] * 255 + 8) // 16)
      assert (ex["image"] == ex["image"][:, :, :1]).all() and (ex["image"][1::4] == ex["image"][::4]).all()
      rows.append(row)
      labels.append(int(ex["label"]))
    split_rows[split] = rows
    if split == "validation":  # stratified: round(20%) of every class
      counts = np.bincount(labels, minlength=10)
      expected = [round(0.2 * n) for n in np.bincount(reference.target)]
      assert counts.tolist() == expected and 35 <= counts.min() and counts.max() <= 37
  assert sorted(split_rows["train"] + split_rows["validation"]) == list(range(1797))


def test_digits_split_rule_is_sha256_stratified():
  """The documented rule, recomputed with hashlib alone."""
  labels = np.repeat(np.arange(3), [10, 11, 4])
  expected = []
  for c in range(3):
    members = np.flatnonzero(labels == c)
    ranked = sorted(members, key=lambda r: hashlib.sha256(f"0:{r}".encode()).hexdigest())
    expected += ranked[:round(0.2 * len(members))]
  assert digits.validation_rows(labels).tolist() == sorted(expected) and len(expected) == 5


@pytest.mark.parametrize("count", [2, 3])
def test_digits_processes_and_resume_give_the_same_global_batches(digits_dir, count):
  """The determinism contract with every random augmentation on: 1 process == `count` processes, and
  start_step=s == steps s.. of a run from 0."""
  kw = dict(global_batch_size=12, resolution=16, seed=11, augment=HEAVY, data_dir=digits_dir)
  one = take(data.train_iterator("digits", **kw), 4)
  parts = [take(data.train_iterator("digits", process_index=p, process_count=count, **kw), 4)
           for p in range(count)]
  for k in range(4):
    assert_batches_equal({key: np.concatenate([part[k][key] for part in parts]) for key in one[k]}, one[k])
    assert one[k]["image"].shape == (12, 16, 16, 3) and one[k]["image"].dtype == np.float32
    assert one[k]["label"].dtype == np.int32
  for k, batch in enumerate(take(data.train_iterator("digits", start_step=2, **kw), 2)):
    assert_batches_equal(batch, one[2 + k])
  # Across the epoch boundary (1438 / 12 = 119.8 steps per epoch), two resumed runs agree where they overlap.
  late = take(data.train_iterator("digits", start_step=118, **kw), 4)
  for k, batch in enumerate(take(data.train_iterator("digits", start_step=120, **kw), 2)):
    assert_batches_equal(batch, late[2 + k])
  other_seed = next(data.train_iterator("digits", **dict(kw, seed=12)))
  assert not np.array_equal(other_seed["image"], one[0]["image"])


def test_digits_epoch_is_a_permutation(digits_dir):
  batches = take(data.train_iterator("digits", global_batch_size=719, resolution=8, seed=0, augment=LIGHT,
                                     data_dir=digits_dir), 2)
  labels = np.concatenate([b["label"] for b in batches])
  from sklearn.datasets import load_digits
  target = load_digits().target
  train = np.setdiff1d(np.arange(1797), digits.validation_rows(target))
  assert np.bincount(labels, minlength=10).tolist() == np.bincount(target[train], minlength=10).tolist()


def test_digits_images_and_labels_stay_aligned(digits_dir):
  """End to end: class means of augmented train images classify the eval images well (labels travel with
  their images through shuffling, augmentation and batching)."""
  kw = dict(resolution=16, data_dir=digits_dir)
  train = take(data.train_iterator("digits", global_batch_size=719, seed=0, augment=LIGHT, **kw), 4)
  images = np.concatenate([b["image"] for b in train]).reshape(4 * 719, -1)
  labels = np.concatenate([b["label"] for b in train])
  means = np.stack([images[labels == c].mean(0) for c in range(10)])
  correct = total = 0
  for b in data.eval_iterator("digits", global_batch_size=100, **kw):
    guess = np.argmin(((b["image"].reshape(len(b["image"]), -1)[:, None] - means) ** 2).sum(-1), axis=1)
    correct += ((guess == b["label"]) * b["mask"]).sum()
    total += b["mask"].sum()
  assert total == 359 and correct / total > 0.8


def eval_examples(name, count, global_batch_size, **kw):
  """Real (image bytes, label) rows in process order; checks equal batch counts and zero padding."""
  per_process = [list(data.eval_iterator(name, global_batch_size=global_batch_size, process_index=p,
                                         process_count=count, **kw)) for p in range(count)]
  assert len({len(batches) for batches in per_process}) == 1
  rows = []
  for batches in per_process:
    for b in batches:
      assert b["mask"].dtype == np.float32 and set(np.unique(b["mask"])) <= {0.0, 1.0}
      pad = b["mask"] == 0
      assert not b["image"][pad].any() and not b["label"][pad].any()
      rows += [(img.tobytes(), int(label)) for img, label in zip(b["image"][~pad], b["label"][~pad])]
  return per_process, rows


@pytest.mark.parametrize("count, global_batch_size", [(2, 64), (3, 48)])
def test_digits_eval_covers_every_example_once(digits_dir, count, global_batch_size):
  _, reference = eval_examples("digits", 1, 100, resolution=16, data_dir=digits_dir)
  per_process, rows = eval_examples("digits", count, global_batch_size, resolution=16, data_dir=digits_dir)
  assert rows == reference and len(rows) == 359
  assert len(per_process[0]) == -(-(-(-359 // count)) // (global_batch_size // count))
  assert per_process[0][0]["image"].shape == (global_batch_size // count, 16, 16, 3)


def test_eval_shards_have_tfds_even_splits_sizes(digits_dir):
  """Our contiguous eval shards are sized like tfds.split_for_jax_process / tfds.even_splits."""
  from tinynet_jax.data import schedule
  builder = digits.builder(digits_dir)
  for count in (2, 3, 4, 7):
    expected = [builder.info.splits[s].num_examples for s in tfds.even_splits("validation", count)]
    assert [b - a for a, b in (schedule.even_split(359, p, count) for p in range(count))] == expected


def test_digits_streaming_mode_resumes_exactly(digits_dir):
  """in_memory=False reads the TFRecord files in order (the full-ImageNet path); resume must still be exact,
  here across the first epoch boundary (1438 / 8 = 179.75 steps)."""
  kw = dict(global_batch_size=8, resolution=8, seed=3, augment=LIGHT, data_dir=digits_dir, in_memory=False)
  assert sources.open_source("digits", digits_dir, {"in_memory": False}).train_mode() == "stream"
  run = take(data.train_iterator("digits", **kw), 183)
  for k, batch in enumerate(take(data.train_iterator("digits", start_step=178, **kw), 5)):
    assert_batches_equal(batch, run[178 + k])
  labels = np.concatenate([b["label"] for b in run[:179]])  # 1432 of the first epoch's 1438 examples
  assert np.bincount(labels, minlength=10).min() >= 130


def test_array_record_source_reads_the_same_examples(digits_dir, tmp_path):
  """A digits copy prepared as array_record is read by index through a TFDS data source: same batches."""
  digits.TinynetDigits(data_dir=str(tmp_path)).download_and_prepare(file_format="array_record")
  kw = dict(global_batch_size=8, resolution=16, seed=5, augment=HEAVY)
  assert sources.open_source("digits", str(tmp_path), {}).train_mode() == "array_record"
  for a, b in zip(take(data.train_iterator("digits", data_dir=str(tmp_path), **kw), 2),
                  take(data.train_iterator("digits", data_dir=digits_dir, **kw), 2)):
    assert_batches_equal(a, b)
  _, rows = eval_examples("digits", 2, 128, resolution=8, data_dir=str(tmp_path))
  _, reference = eval_examples("digits", 1, 128, resolution=8, data_dir=digits_dir)
  assert rows == reference


# ---- errors --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, needles", [
    (lambda d: data.dataset_info("no_such_dataset", d), ["unknown dataset 'no_such_dataset'", "digits"]),
    (lambda d: data.dataset_info("imagenet2012", d),
     ["imagenet2012 is not prepared", "ILSVRC2012_img_train.tar", "downloads/manual/", "tfds build imagenet2012"]),
    (lambda d: data.train_iterator("imagenet100", global_batch_size=8, resolution=8, seed=0, data_dir=d),
     ["imagenet100 is built from imagenet2012", "downloads/manual/"]),
    (lambda d: data.dataset_info("mnist", d), ["'mnist' is not prepared", "tfds build mnist"]),
    (lambda d: data.dataset_info("glue/cola", d), ["not an image classification dataset"]),
    (lambda d: data.dataset_info("digits", d, num_classes=3), ["unknown option", "num_classes"]),
    (lambda d: data.eval_iterator("digits", global_batch_size=10, resolution=8, process_count=4, data_dir=d),
     ["does not divide evenly over 4"]),
])
def test_user_errors_are_one_line_data_errors(tmp_path, call, needles):
  with pytest.raises(DataError) as info:
    call(str(tmp_path / "tfds"))
  message = str(info.value)
  assert "\n" not in message
  for needle in needles:
    assert needle in message


# ---- TFDS mock data ------------------------------------------------------------------------------------------

def mock(num_examples):
  return tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE)


def test_imagenet2012_mock_contract_with_fused_jpeg_crop():
  with mock(10):
    info = data.dataset_info("imagenet2012")
    assert (info.num_classes, info.num_train, info.num_eval) == (1000, 10, 10)
    assert info.label_names[:2] == ("n01440764", "n01443537")
    ex = next(tfds.builder("imagenet2012").as_dataset(
        split="train", decoders={"image": tfds.decode.SkipDecoding()}).as_numpy_iterator())
    assert tf.io.is_jpeg(ex["image"]).numpy()  # the fused decode_and_crop_jpeg path is the one exercised
    kw = dict(global_batch_size=4, resolution=24, seed=0, augment=data.Augment(randaugment="rand-m9-mstd0.5"))
    one = take(data.train_iterator("imagenet2012", **kw), 3)
    two = [take(data.train_iterator("imagenet2012", process_index=p, process_count=2, **kw), 3) for p in (0, 1)]
    for k in range(3):
      assert_batches_equal({key: np.concatenate([two[0][k][key], two[1][k][key]]) for key in one[k]}, one[k])
    assert_batches_equal(next(data.train_iterator("imagenet2012", start_step=2, **kw)), one[2])
    _, reference = eval_examples("imagenet2012", 1, 1, resolution=24)
    per_process, rows = eval_examples("imagenet2012", 3, 6, resolution=24)
    assert rows == reference and len(rows) == 10 and len(per_process[0]) == 2  # 4,3,3 rows in batches of 2


def test_cifar10_mock_uses_the_generic_tfds_path():
  with mock(6):
    info = data.dataset_info("cifar10")
    assert (info.num_classes, info.num_train) == (10, 6)
    batch = next(data.train_iterator("cifar10", global_batch_size=3, resolution=20, seed=0))
    assert batch["image"].shape == (3, 20, 20, 3) and batch["label"].max() < 10


# ---- ImageNet-100 --------------------------------------------------------------------------------------------

def test_imagenet100_class_lists():
  wnids = imagenet100.imagenet_wnids()
  assert len(wnids) == 1000 and wnids == sorted(wnids)
  text = (__import__("importlib").resources.files("tinynet_jax.data.tfdata") / "imagenet100.txt").read_text()
  assert text == imagenet100.class_list_text(wnids)  # the checked-in list is what the documented rule draws
  ours, cmc = imagenet100.read_class_list("tinynet"), imagenet100.read_class_list("cmc")
  for wnid_list in (ours, cmc):
    assert len(set(wnid_list)) == 100 and set(wnid_list) <= set(wnids)
  assert list(ours) == sorted(ours) and cmc[:3] == ("n02869837", "n01749939", "n02488291")
  reference = "/work/shared/reference/imagenet100_cmc.txt"
  if os.path.exists(reference):
    with open(reference) as f:
      assert tuple(line.strip() for line in f if line.strip() and not line.startswith("#")) == cmc


def test_train_file_selection_rule():
  names = {c: [f"{c}_{i}.JPEG" for i in range(7)] for c in ("n1", "n2")}
  names["n3"] = ["n3_0.JPEG"]
  chosen = imagenet100.select_train_files(names, per_class=3, seed=0)
  for c, files in names.items():
    expected = sorted(files, key=lambda n: hashlib.sha256(f"0:{n}".encode()).hexdigest())[:3]
    assert {n for n in chosen if n.startswith(c + "_")} == set(expected)
  assert len(chosen) == 3 + 3 + 1
  # Per-class: other classes' files never change a class's choice.
  assert imagenet100.select_train_files({"n1": names["n1"]}, 3) == {n for n in chosen if n.startswith("n1_")}


def jpeg(seed, size=(12, 16)):
  from PIL import Image
  pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, "JPEG")
  return buffer.getvalue()


def fake_imagenet(split, labels, per_class):
  wnids = imagenet100.imagenet_wnids()
  for label in labels:
    for k in range(per_class):
      name = f"{wnids[label]}_{k}.JPEG" if split == "train" else f"ILSVRC2012_val_{label:05d}{k}.JPEG"
      yield name, label, jpeg(label * 100 + k)


def test_read_imagenet_filters_labels_through_tfds():
  """The real reader (tfds.builder('imagenet2012').as_dataset) on a mocked imagenet2012 with chosen labels."""
  examples = list(fake_imagenet("train", [0, 5, 7, 900], 2))

  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    return tf.data.Dataset.from_tensor_slices({
        "file_name": [e[0] for e in examples], "label": np.array([e[1] for e in examples], np.int64),
        "image": [e[2] for e in examples]})

  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=as_dataset):
    got = list(imagenet100.read_imagenet(None, "train", [5, 900]))
    names = list(imagenet100.read_imagenet(None, "train", [7], with_images=False))
  assert got == [e for e in examples if e[1] in (5, 900)]
  assert names == [(e[0], 7, None) for e in examples if e[1] == 7]


def test_imagenet100_cmc_built_from_a_fake_imagenet(tmp_path, monkeypatch):
  cmc = imagenet100.read_class_list("cmc")
  index = {w: i for i, w in enumerate(imagenet100.imagenet_wnids())}
  chosen = {index[w] for w in cmc}
  extra = 3  # two non-chosen classes must be dropped
  others = [i for i in range(1000) if i not in chosen][:extra]

  def reader(data_dir, split, labels, with_images=True):
    assert set(labels) == chosen
    for name, label, image in fake_imagenet(split, sorted(chosen) + others, 3 if split == "train" else 1):
      if label in labels:  # the real reader filters in tf.data
        yield name, label, image if with_images else None

  monkeypatch.setattr(imagenet100, "read_imagenet", reader)
  monkeypatch.setattr(imagenet100, "TRAIN_PER_CLASS", 2)
  monkeypatch.setattr(builders, "open_imagenet2012", lambda data_dir: None)
  d = str(tmp_path)
  info = data.dataset_info("imagenet100_cmc", d)
  assert (info.num_classes, info.num_train, info.num_eval, info.label_names) == (100, 200, 100, cmc)
  builder = imagenet100.builder("imagenet100_cmc", d)
  per_class = collections.defaultdict(set)
  for ex in builder.as_dataset(split="train").as_numpy_iterator():
    name = ex["file_name"].decode()
    assert cmc[ex["label"]] == name.split("_")[0]  # labels are positions in the CMC list
    per_class[name.split("_")[0]].add(name)
  for wnid, names in per_class.items():
    assert names == imagenet100.select_train_files({wnid: [f"{wnid}_{k}.JPEG" for k in range(3)]}, 2)
  assert len(per_class) == 100
  batch = next(data.train_iterator("imagenet100_cmc", global_batch_size=8, resolution=16, seed=0, data_dir=d))
  assert batch["image"].shape == (8, 16, 16, 3) and batch["label"].max() < 100
  _, rows = eval_examples("imagenet100_cmc", 3, 48, resolution=16, data_dir=d)
  assert sorted(label for _, label in rows) == list(range(100))
