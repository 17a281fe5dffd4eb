"""``dataset=folder:PATH`` as a TFDS dataset, prepared once per folder state into the data dir.

`tinynet_jax.data.folder` scans and checks the folder; `TinynetFolder` stores its images as TFRecords in
``<data_dir>/tinynet_folder/<folder name>-<fingerprint>/1.0.0/`` (train and validation splits, class names from
the folder names), so later runs read those instead of decoding the files again. The fingerprint covers every
file's path, size and mtime, so a changed folder gets a new copy; the split rule, its parameters, the folder and
any skipped files are in the copy's ``metadata.json``.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import tqdm

from tinynet_jax.data import folder
from tinynet_jax.data.tfdata import builders
from tinynet_jax.data.tfdata.tfenv import tfds

NAME = "tinynet_folder"  # TFDS registry name of the builder below


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  scan: Any = None  # folder.Scan
  skipped: tuple[str, ...] = ()  # corrupt files left out (skip_corrupt)

  def __repr__(self) -> str:  # TFDS logs the config; the scan lists every file
    return f"FolderConfig({self.name!r})"


class TinynetFolder(tfds.core.GeneratorBasedBuilder):
  """A folder of images; one builder config per folder state (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "RGB JPEG/PNG bytes kept, other images converted to RGB PNG; not resized."}

  def _info(self) -> tfds.core.DatasetInfo:
    scan, skipped = self.builder_config.scan, self.builder_config.skipped
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"The image folder {scan.root}.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=list(scan.class_names)),
            "file_name": tfds.features.Text(doc="path relative to the folder"),
        }),
        supervised_keys=("image", "label"),
        metadata=tfds.core.MetadataDict(folder=str(scan.root), fingerprint=scan.fingerprint,
                                        split=scan.split_rule(), skip_corrupt=scan.options["skip_corrupt"],
                                        skipped=list(skipped)),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the images are local
    return {split: self._generate_examples(split) for split in ("train", "validation")}

  def _generate_examples(self, split):
    for relative, label, encoded in folder.read_images(self.builder_config.scan, split,
                                                       self.builder_config.skipped):
      yield relative, {"image": encoded, "label": label, "file_name": relative}


def config_name(scan: folder.Scan) -> str:
  """'<folder name>-<fingerprint>': readable in the data dir, unique per folder state."""
  slug = re.sub(r"[^a-z0-9_]+", "_", scan.root.name.lower()).strip("_")[:40] or "folder"
  return f"{slug}-{scan.fingerprint}"


def _progress(results, total):
  return tqdm.tqdm(results, total=total, desc="checking images", unit=" images", disable=None)


def builder(path: str, data_dir: str | None, options: dict) -> tfds.core.DatasetBuilder:
  """The prepared copy of the folder at `path` in its current state; checks and prepares it on first use.

  Every problem with the folder (layout, classes, unreadable images) is a DataError raised before anything is
  written to the data dir.
  """
  scan = folder.scan(path, options)
  name = config_name(scan)

  def make(skipped=()):
    with builders.quiet():  # TFDS warns 'Using custom data configuration' for every config made at run time
      return TinynetFolder(config=FolderConfig(name=name, scan=scan, skipped=skipped), data_dir=data_dir)

  existing = make()
  if existing.is_prepared():
    return existing
  counts = {split: len(entries) for split, entries in scan.files.items()}
  logging.warning("image folder %s: %d classes, %d train / %d validation images; preparing it once into %s",
                  scan.root, len(scan.class_names), counts["train"], counts["validation"],
                  builders.default_data_dir(data_dir))
  skipped = folder.check_images(scan, progress=_progress)
  return builders.prepare_once(lambda: make(skipped))
