"""dataset=folder:PATH: a folder of images written here (tiny PNGs and JPEGs, classes told apart by colour).

Cheap checks first (the split rule, the fingerprint, image modes, bad folders as a table, no training); then one
end-to-end test: train with the CLI, evaluate, predict with the folder's class names; the sweep's plumbing with a
fake trainer, and (opt-in, TINYNET_SLOW_TESTS=1: two more models' compiles) a real two-model sweep.
"""
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_datasets")
from PIL import Image  # noqa: E402

from conftest import slow  # noqa: E402
from tinynet_jax import data  # noqa: E402
from tinynet_jax.data import folder  # noqa: E402
from tinynet_jax.errors import DataError  # noqa: E402

COLOURS = {"blue": (20, 30, 220), "green": (30, 200, 40), "red": (220, 30, 20)}  # sorted: labels 0, 1, 2
SIZE = 20


def write_image(path, colour, seed, size=(SIZE, SIZE)):
  """A noisy patch of `colour`, as PNG or JPEG by the file's extension."""
  noise = np.random.default_rng(seed).normal(0, 12, (size[1], size[0], 3))
  pixels = np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels).save(path)


def make_folder(root, per_class=5, classes=COLOURS, split=""):
  """`per_class` images of each class under root/split/<class>/, alternately .png and .jpg."""
  for c, (name, colour) in enumerate(classes.items()):
    for i in range(per_class):
      write_image(Path(root, split, name, f"{i}.{'png' if i % 2 else 'jpg'}"), colour, seed=100 * c + i)
  return root


def open_folder(root, data_dir, **options):
  return data.dataset_info(f"folder:{root}", str(data_dir), **options)


def copies(data_dir):
  """The prepared copies (builder configs) in a data dir."""
  path = Path(data_dir, "tinynet_folder")
  return sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) if path.exists() else []


def test_the_split_rule_is_the_documented_hash_rule_and_is_recorded(tmp_path):
  root = make_folder(tmp_path / "imgs", per_class=7)
  scan = folder.scan(str(root), {"validation_fraction": 0.3, "split_seed": 5})
  assert scan.class_names == tuple(COLOURS) and scan.layout == "classes"
  for label, name in enumerate(COLOURS):
    files = sorted(f"{i}.{'png' if i % 2 else 'jpg'}" for i in range(7))
    expected = sorted(files, key=lambda f: hashlib.sha256(f"5:{f}".encode()).hexdigest())[:2]  # round(0.3 * 7)
    assert sorted(p for p, l in scan.files["validation"] if l == label) == [f"{name}/{f}" for f in sorted(expected)]
  assert len(scan.files["train"]) == 15 and scan.split_rule()["validation_fraction"] == 0.3
  assert folder.scan(str(root), {"validation_fraction": 0.3, "split_seed": 5}).files == scan.files  # deterministic
  assert folder.scan(str(root), {"split_seed": 6}).files != scan.files

  info = open_folder(root, tmp_path / "tfds", validation_fraction=0.3, split_seed=5)
  assert (info.num_classes, info.num_train, info.num_eval, info.label_names) == (3, 15, 6, tuple(COLOURS))
  [copy] = copies(tmp_path / "tfds")
  metadata = json.loads(Path(tmp_path, "tfds", "tinynet_folder", copy, "1.0.0", "metadata.json").read_text())
  assert metadata["split"] == scan.split_rule() and metadata["folder"] == str(root.resolve())
  assert metadata["fingerprint"] == scan.fingerprint and copy.endswith(scan.fingerprint)


def test_a_changed_folder_is_prepared_again_an_unchanged_one_is_not(tmp_path):
  root = make_folder(tmp_path / "imgs", split="train")
  make_folder(root, per_class=2, split="val")
  d = tmp_path / "tfds"
  assert open_folder(root, d).num_train == 15 and len(copies(d)) == 1
  assert open_folder(root, d).num_train == 15 and len(copies(d)) == 1  # reused
  write_image(root / "train" / "red" / "new.png", COLOURS["red"], seed=7)  # added
  assert open_folder(root, d).num_train == 16 and len(copies(d)) == 2
  (root / "train" / "red" / "new.png").rename(root / "train" / "red" / "renamed.png")
  assert open_folder(root, d).num_train == 16 and len(copies(d)) == 3
  (root / "train" / "red" / "renamed.png").unlink()  # back to the first state
  assert open_folder(root, d).num_train == 15 and len(copies(d)) == 3  # same files, sizes, mtimes: first copy


def test_grey_rgba_palette_16_bit_and_mixed_sizes_become_rgb(tmp_path, caplog):
  root = tmp_path / "imgs"
  make_folder(root, per_class=2, split="val")
  red, blue = np.array(COLOURS["red"], np.uint8), np.array(COLOURS["blue"], np.uint8)
  train = root / "train"
  (train / "red").mkdir(parents=True)
  Image.fromarray(np.tile(red, (17, 23, 1))).convert("P").save(train / "red" / "palette.png")
  Image.fromarray(np.dstack([np.tile(red, (SIZE, SIZE, 1)), np.full((SIZE, SIZE), 90, np.uint8)])).save(
      train / "red" / "rgba.png")
  Image.fromarray(np.tile(red, (30, 12, 1))).save(train / "red" / "small.bmp")
  (train / "blue").mkdir()
  Image.fromarray(np.tile(blue, (SIZE, SIZE, 1))).convert("CMYK").save(train / "blue" / "cmyk.jpg")
  Image.fromarray(np.tile(blue, (SIZE, SIZE, 1))).save(train / "blue" / "photo.webp", lossless=True)
  (train / "green").mkdir()
  Image.fromarray(np.full((SIZE, 25), 40000, np.uint16)).save(train / "green" / "grey16.png")  # I;16 grey
  Image.fromarray(np.full((SIZE, SIZE), 128, np.uint8)).save(train / "green" / "grey.jpg")
  (train / "green" / "notes.txt").write_text("not an image")  # ignored
  (train / "green" / "broken.png").write_bytes(b"\x89PNG not really")
  with caplog.at_level(logging.WARNING):
    info = open_folder(root, tmp_path / "tfds", skip_corrupt=True)
  assert "skipping 1 unreadable image(s): train/green/broken.png" in caplog.text
  assert info.num_train == 7
  [copy] = copies(tmp_path / "tfds")
  metadata = json.loads(Path(tmp_path, "tfds", "tinynet_folder", copy, "1.0.0", "metadata.json").read_text())
  assert metadata["skipped"] == ["train/green/broken.png"]
  images, labels = data.resident_train_arrays(f"folder:{root}", size=12, data_dir=str(tmp_path / "tfds"),
                                              skip_corrupt=True)
  assert images.shape == (7, 12, 12, 3) and images.dtype == np.uint8
  means = {}
  for image, label in zip(images, labels):
    means.setdefault(int(label), []).append(image.reshape(-1, 3).mean(0))
  for label in (0, 2):  # blue, red: every mode decodes to the class's colour
    np.testing.assert_allclose(np.array(means[label]), np.tile([blue, None, red][label], (len(means[label]), 1)),
                               atol=8)
  assert all(abs(m[0] - m[1]) < 2 and abs(m[1] - m[2]) < 2 for m in means[1])  # grey stays grey, in 3 channels


def _corrupt(root):
  make_folder(root)
  (root / "red" / "3.png").write_bytes(b"garbage")
  (root / "blue" / "1.png").write_bytes((root / "blue" / "3.png").read_bytes()[:60])  # truncated


def _layout_a(train=COLOURS, val=COLOURS, val_per_class=2):
  return lambda root: (make_folder(root, classes=train, split="train"),
                       make_folder(root, per_class=val_per_class, classes=val, split="val"))


def _two_of(names):
  return {n: COLOURS[n] for n in names}


BAD_FOLDERS = {
    "missing": (lambda root: None, {}, "image folder {root} does not exist"),
    "a file": (lambda root: root.write_text("x"), {}, "is not a folder"),
    "empty": (lambda root: root.mkdir(), {}, "has no class folders"),
    "no images": (lambda root: (root / "red").mkdir(parents=True) or (root / "red" / "a.txt").write_text("x"),
                  {}, "has no images"),
    "an empty class": (lambda root: make_folder(root) and (root / "zebra").mkdir(), {},
                       "class folder(s) without images: zebra"),
    "a class the split leaves without validation": (
        lambda root: make_folder(root, per_class=2), {}, "class 'blue' has 2 image(s), which leaves it no "
                                                         "validation images at validation_fraction=0.2"),
    "a class the split leaves without train": (
        lambda root: make_folder(root, per_class=2), {"validation_fraction": 0.9}, "no train images"),
    "a val class without images": (
        lambda root: _layout_a()(root) and [p.unlink() for p in (root / "val" / "green").iterdir()],
        {}, "val: class folder(s) without images: green"),
    "mismatched classes": (_layout_a(val=_two_of(["blue", "red"])), {},
                           "train/ and val/ have different classes (only in train/: green)"),
    "extra val class": (_layout_a(train=_two_of(["blue", "red"])), {}, "(only in val/: green)"),
    "train without val": (lambda root: make_folder(root, split="train"), {}, "has train/ but no val/"),
    "val and validation": (lambda root: _layout_a()(root) and make_folder(root, split="validation"), {},
                           "has both val/ and validation/"),
    "corrupt images": (_corrupt, {}, "2 unreadable image(s): blue/1.png (OSError"),
    "corrupt images, named": (_corrupt, {}, "also red/3.png; fix or remove them, or set "
                                            "--config.dataset_options.skip_corrupt=True"),
    "bad fraction": (make_folder, {"validation_fraction": 1.5}, "validation_fraction must be a number in (0, 1)"),
    "bad skip flag": (make_folder, {"skip_corrupt": "yes"}, "skip_corrupt must be True or False"),
    "unknown option": (make_folder, {"fraction": 0.1}, "unknown option(s) for dataset 'folder:"),
}


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_bad_folders_are_one_line_errors_and_write_nothing(case, tmp_path):
  build, options, needle = BAD_FOLDERS[case]
  root = tmp_path / "imgs"
  build(root)
  with pytest.raises(DataError) as error:
    open_folder(root, tmp_path / "tfds", **options)
  message = str(error.value)
  assert needle.format(root=root) in message and "\n" not in message, message
  assert not (tmp_path / "tfds").exists()


def test_a_bad_folder_on_the_command_line_exits_2_with_one_line(tmp_path, cli):
  code, out, err = cli("tinynet_jax.main", f"--config=configs/train.py:dataset=folder:{tmp_path / 'nope'}",
                       f"--workdir={tmp_path / 'run'}", f"--config.data_dir={tmp_path / 'tfds'}")
  assert code == 2 and "does not exist" in err and "Traceback" not in err, err
  assert len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()


# ---- end to end -----------------------------------------------------------------------------------------------

TINY = ["--config.r=0.25", "--config.d=0.3", "--config.w=0.25", "--config.model=", "--config.base_resolution=64"]
# 30 steps of 16 images (18 train images): the colours are learnt (2/3 of the 6 validation images); cross-replica
# BN, as 8 fake devices would leave each replica's statistics 2 images.
TRAIN = ["--config.batch_size=16", "--config.total_steps=30", "--config.warmup_epochs=0", "--config.lr=0.5",
         "--config.ema_decay=0.5", "--config.drop_rate=0", "--config.sync_bn=True", "--config.log_every_steps=10",
         "--config.eval_every_steps=30", "--config.checkpoint_every_steps=1000"]


@slow  # ~70 s on 2 cores (one model's compile on 8 devices): CI's 12-minute budget leaves no room for it
def test_train_evaluate_and_predict_on_a_folder(tmp_path, cli, monkeypatch):
  """The expensive path, once: CLI training (one model's compile), configs/eval.py, predict's and cam's class
  names."""
  root = make_folder(tmp_path / "my images", per_class=8)  # 6 train + 2 validation per class
  d = tmp_path / "tfds"
  run = tmp_path / "run"
  code, out, err = cli("tinynet_jax.main", f"--config=configs/train.py:dataset=folder:{root}", f"--workdir={run}",
                       f"--config.data_dir={d}", *TINY, *TRAIN)
  assert code == 0, err
  final = json.loads((run / "final_metrics.json").read_text())
  assert final["dataset"] == f"folder:{root}" and final["resolution"] == 16 and final["steps"] == 30
  assert final["top1"] >= 0.5, final  # chance is 1/3
  recorded = json.loads((run / "dataset.json").read_text())
  assert recorded == {"name": f"folder:{root}", "num_classes": 3, "num_train": 18, "num_eval": 6,
                      "label_names": list(COLOURS)}
  assert json.loads((run / "config.json").read_text())["dataset_options"]["validation_fraction"] is None  # default

  # The eval batch of the run itself: the same eval program, from the compilation cache.
  code, out, err = cli("tinynet_jax.main", f"--config=configs/eval.py:checkpoint={run},dataset=folder:{root},"
                       "batch_size=16", f"--workdir={tmp_path / 'eval'}", f"--config.data_dir={d}")
  assert code == 0, err
  result = json.loads((tmp_path / "eval" / "eval_metrics.json").read_text())
  assert result["examples"] == 6 and result["top1"] == pytest.approx(final["top1"], abs=1e-6)

  code, out, err = cli("tinynet_jax.predict", "--checkpoint", run, root / "red" / "0.jpg", "--top", "3")
  assert code == 0, err
  assert all(name in out for name in COLOURS) and "class 0" not in out, out  # the folder's names
  from tinynet_jax.tools import cam
  titles = []
  monkeypatch.setattr(cam, "write_figure", lambda panels, out: titles.extend(p["title"] for p in panels))
  code, out, err = cli("tinynet_jax.cam", "--checkpoint", run, root / "red" / "0.jpg", "--out", tmp_path / "c.png")
  assert code == 0 and titles and titles[0].split(": ")[-1] in COLOURS, (err, titles)

  assert len(copies(d)) == 1  # training and evaluation read one prepared copy


# Three small levels of shallow nets (XLA:CPU compiles dominate); shard 0/2 is the first and the last model.
SWEEP = ["--config.shard=0/2", "--config.sweep.levels=(0.25, 0.125, 0.0625)", "--config.sweep.d_range=(0.3, 0.35)",
         "--config.sweep.fig2_models=0", "--config.sweep.baselines=False", "--config.sweep.formula_models=False",
         "--config.train.total_steps=4", "--config.train.log_every_steps=2", "--config.train.batch_size=16"]


def test_the_sweep_plans_and_records_a_folder(tmp_path):
  """configs/sweep.py with dataset=folder:PATH through the runner, a fake trainer standing in for training."""
  from test_sweep import FakeTrainer, sweep_config
  from tinynet_jax.search import runner
  root = make_folder(tmp_path / "imgs", per_class=4)
  config = sweep_config(f"demo,dataset=folder:{root}", shard="0/2")
  config.unlock()
  config.train.data_dir = str(tmp_path / "tfds")
  config.sweep.update(levels=(0.25, 0.125, 0.0625), d_range=(0.3, 0.35), fig2_models=0, baselines=False, replicates=0,
                      formula_models=False)
  trainer = FakeTrainer()
  assert runner.run_sweep(config, tmp_path / "sweep", train_fn=trainer) == {"complete": False, "missing": 3}
  assert all(c.dataset == f"folder:{root}" and c.data_on_device for c in trainer.configs)
  rows = [json.loads(line) for line in (tmp_path / "sweep" / "results.jsonl").read_text().splitlines()]
  assert len(rows) == 3 and all(r["dataset"] == f"folder:{root}" for r in rows)


@slow
def test_a_real_two_model_sweep_on_a_folder(tmp_path, cli):
  """The same sweep really trained (data on the device): ~1-2 minutes of compiles on a 2-core CPU."""
  root = make_folder(tmp_path / "imgs", per_class=4)
  sweep = tmp_path / "sweep"
  code, out, err = cli("tinynet_jax.main", f"--config=configs/sweep.py:demo,dataset=folder:{root}",
                       f"--workdir={sweep}", f"--config.train.data_dir={tmp_path / 'tfds'}", *SWEEP)
  assert code == 0, err
  rows = [json.loads(line) for line in (sweep / "results.jsonl").read_text().splitlines()]
  assert len(rows) == 2 and all(r["dataset"] == f"folder:{root}" and r["steps"] == 4 for r in rows), rows
  assert "1 of 3 still to train elsewhere" in err
  for row in rows:
    assert json.loads((sweep / "models" / row["id"] / "dataset.json").read_text())["label_names"] == list(COLOURS)
