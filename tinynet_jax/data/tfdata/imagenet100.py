"""ImageNet-100, the paper's search set: 100 ImageNet classes x 500 training images, validated on the 50 official
validation images of each class (5,000).

The authors never released their classes or files (tinynet.md §4.3), so 'imagenet100' is ours, fixed by rules:

* classes: `draw_classes` -- the 100 of the 1,000 synsets (TFDS's imagenet2012 label list, sorted wnids) with the
  smallest ``sha256(f"{CLASS_SEED}:{wnid}")``, listed in wnid order; checked in as ``imagenet100.txt`` (a test
  regenerates it);
* training files: `select_train_files` -- per class, the 500 training file names (e.g.
  ``n01440764_10026.JPEG``) with the smallest ``sha256(f"{FILE_SEED}:{file_name}")``.

'imagenet100_cmc' uses the class list of Tian et al.'s Contrastive Multiview Coding (``imagenet100_cmc.txt``,
in its published order) with the same file rule. Labels are 0..99 in list order.

Both are TFDS datasets (`TinynetImagenet100`, configs 'tinynet' and 'cmc') materialised once from the
imagenet2012 prepared in the same data_dir: two reads of its train split (file names, then the chosen images),
one of validation; the JPEG bytes are copied, not re-encoded. After that they are ordinary ~6 GB datasets.
"""
from __future__ import annotations

import hashlib
from importlib import resources
from typing import Iterable, Iterator, Mapping, Sequence

from tinynet_jax.data.tfdata import builders
from tinynet_jax.data.tfdata.tfenv import tf, tfds
from tinynet_jax.errors import DataError

NAME = "tinynet_imagenet100"  # TFDS registry name of the builder below
VARIANTS = {"imagenet100": "tinynet", "imagenet100_cmc": "cmc"}  # public name -> builder config
CLASS_FILES = {"tinynet": "imagenet100.txt", "cmc": "imagenet100_cmc.txt"}
NUM_CLASSES = 100
TRAIN_PER_CLASS = 500
CLASS_SEED = 0
FILE_SEED = 0
_HEADER = ("# ImageNet-100 classes of tinynet_jax: the 100 ImageNet-1k synsets with the smallest\n"
           f"# sha256('{CLASS_SEED}:<wnid>'), in wnid order (tinynet_jax.data.tfdata.imagenet100.draw_classes).\n")


def _rank(seed: int, key: str) -> str:
  return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def draw_classes(wnids: Sequence[str], seed: int = CLASS_SEED, k: int = NUM_CLASSES) -> list[str]:
  """The k wnids with the smallest sha256(f"{seed}:{wnid}"), sorted (so labels follow ImageNet's order)."""
  return sorted(sorted(wnids, key=lambda w: _rank(seed, w))[:k])


def class_list_text(wnids: Sequence[str]) -> str:
  """The checked-in file's exact content for `draw_classes(wnids)`."""
  return _HEADER + "".join(f"{w}\n" for w in draw_classes(wnids))


def read_class_list(variant: str) -> tuple[str, ...]:
  """The wnids of a variant ('tinynet' or 'cmc') from the package's data file ('#' lines are comments)."""
  text = resources.files("tinynet_jax.data.tfdata").joinpath(CLASS_FILES[variant]).read_text()
  wnids = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
  assert len(wnids) == NUM_CLASSES == len(set(wnids)), f"corrupt class list {CLASS_FILES[variant]}"
  return wnids


def imagenet_wnids() -> list[str]:
  """ImageNet-1k's synsets in TFDS label order (ships with TFDS; no data needed)."""
  return list(tfds.builder("imagenet2012").info.features["label"].names)


def select_train_files(names_by_class: Mapping[str, Iterable[str]], per_class: int = TRAIN_PER_CLASS,
                       seed: int = FILE_SEED) -> set[str]:
  """Per class, the `per_class` file names with the smallest sha256(f"{seed}:{name}") (all, if fewer)."""
  chosen: set[str] = set()
  for names in names_by_class.values():
    chosen.update(sorted(names, key=lambda name: _rank(seed, name))[:per_class])
  return chosen


def read_imagenet(data_dir: str | None, split: str, labels: Sequence[int],
                  with_images: bool = True) -> Iterator[tuple[str, int, bytes | None]]:
  """(file_name, imagenet label, JPEG bytes or None) of the examples of `split` whose label is in `labels`."""
  builder = builders.open_imagenet2012(data_dir)
  ds = builder.as_dataset(split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
  wanted = tf.constant(sorted(labels), tf.int64)
  ds = ds.filter(lambda ex: tf.reduce_any(tf.equal(ex["label"], wanted)))
  if not with_images:
    ds = ds.map(lambda ex: {"file_name": ex["file_name"], "label": ex["label"]})
  for ex in ds.prefetch(64).as_numpy_iterator():
    yield ex["file_name"].decode(), int(ex["label"]), ex.get("image")


class TinynetImagenet100(tfds.core.GeneratorBasedBuilder):
  """100 ImageNet classes x 500 train images + their 5,000 validation images (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "sha256-drawn classes (or CMC's), sha256-selected 500 train files per class."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="tinynet", description="tinynet_jax's sha256-drawn 100 classes"),
      tfds.core.BuilderConfig(name="cmc", description="the 100 classes of Tian et al. (CMC)"),
  ]
  source_data_dir: str | None = None  # where imagenet2012 is prepared; set by `builder`

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=list(read_class_list(self.builder_config.name))),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://image-net.org/",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # built from the imagenet2012 already prepared in the same data_dir
    wnids = read_class_list(self.builder_config.name)
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    remap = {index[w]: new for new, w in enumerate(wnids)}
    return {"train": self._generate_examples("train", remap),
            "validation": self._generate_examples("validation", remap)}

  def _generate_examples(self, split: str, remap: Mapping[int, int]):
    chosen = None
    if split == "train":
      names: dict[int, list[str]] = {label: [] for label in remap}
      for file_name, label, _ in read_imagenet(self.source_data_dir, split, list(remap), with_images=False):
        names[label].append(file_name)
      chosen = select_train_files(names, TRAIN_PER_CLASS)
    for file_name, label, image in read_imagenet(self.source_data_dir, split, list(remap)):
      if chosen is None or file_name in chosen:
        yield file_name, {"image": image, "label": remap[label], "file_name": file_name}


def builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  """The prepared ImageNet-100 variant `name`; materialised from imagenet2012 on first use."""

  def make():
    b = TinynetImagenet100(config=VARIANTS[name], data_dir=data_dir)
    b.source_data_dir = data_dir
    return b

  existing = make()
  if not existing.is_prepared():
    try:
      builders.open_imagenet2012(data_dir)
    except DataError as e:
      raise DataError(f"{name} is built from imagenet2012, which is not prepared: {e}") from None
  return builders.prepare_once(make)
