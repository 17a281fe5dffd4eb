"""``dataset=folder:PATH``: a folder of images as a dataset -- scanning, checks, the split rule, the fingerprint.

Layouts (class names are the sorted folder names; labels 0..C-1 in that order):

* (a) ``PATH/train/<class>/...`` and ``PATH/val/<class>/...`` (or ``PATH/validation/``): the given split;
* (b) ``PATH/<class>/...``: split per class -- the ``round(validation_fraction * n)`` files of a class whose
  ``sha256(f"{split_seed}:{name}")`` is smallest (name: the file's path inside its class folder) form
  'validation', the rest 'train' (defaults 0.2 and 0, the digits' rule). A file keeps its side when others are
  added or removed, and renaming a class folder moves nothing.

Images are found recursively (extensions `EXTENSIONS`, any case; hidden files and others are ignored).

The prepared copy (`tinynet_jax.data.tfdata.image_folder`) is keyed by `Scan.fingerprint`: a sha256 of the
folder's resolved path, every image's relative path, size and mtime (ns), and the options that change the
content (fraction, seed, skip_corrupt). Adding, removing, renaming or rewriting a file gives a new key, so a
changed folder is prepared again rather than served stale; old copies stay in the data dir until deleted.

Pure Python (PIL for the image checks, imported when used): no TensorFlow here.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

from tinynet_jax.errors import DataError

PREFIX = "folder:"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VALIDATION_DIRS = ("val", "validation")
OPTIONS = ("validation_fraction", "split_seed", "skip_corrupt")
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0
FORMAT = 1  # bump when what is stored for the same files changes (part of the fingerprint)
_SHOWN = 3  # file names quoted in an error or warning


def is_folder(name: str) -> bool:
  return isinstance(name, str) and name.startswith(PREFIX)


@dataclasses.dataclass(frozen=True)
class Scan:
  """What a folder holds: per split, (relative path, label) in sorted order, and how it was split."""
  root: Path
  layout: str  # 'train/val' or 'classes'
  class_names: tuple[str, ...]
  files: dict[str, tuple[tuple[str, int], ...]]  # 'train' / 'validation' -> ((path relative to root, label), ...)
  stats: tuple[tuple[str, int, int], ...]  # (relative path, size, mtime_ns) of every image, sorted
  options: dict[str, Any]  # validation_fraction, split_seed (layout b only), skip_corrupt

  @property
  def fingerprint(self) -> str:
    key = json.dumps({"format": FORMAT, "root": str(self.root), "layout": self.layout, "options": self.options,
                      "files": self.stats}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]

  def split_rule(self) -> dict[str, Any]:
    """The split and its parameters, as recorded in the prepared dataset's metadata."""
    if self.layout == "train/val":
      return {"layout": self.layout, "rule": "given: train/ and val/ (or validation/) folders"}
    return {"layout": self.layout, "rule": "per class, the round(validation_fraction * n) files with the smallest "
                                           "sha256(f'{split_seed}:{path in class folder}') are validation",
            "validation_fraction": self.options["validation_fraction"], "split_seed": self.options["split_seed"]}


def check_options(options: dict) -> dict[str, Any]:
  """The folder options with defaults filled in; one-line DataErrors for bad values."""
  fraction = options.get("validation_fraction")
  fraction = VALIDATION_FRACTION if fraction is None else fraction
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
    raise DataError(f"option validation_fraction must be a number in (0, 1), got {fraction!r}")
  seed = options.get("split_seed")
  seed = SPLIT_SEED if seed is None else seed
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise DataError(f"option split_seed must be an integer, got {seed!r}")
  skip = options.get("skip_corrupt")
  skip = False if skip is None else skip
  if not isinstance(skip, bool):
    raise DataError(f"option skip_corrupt must be True or False, got {skip!r}")
  return {"validation_fraction": float(fraction), "split_seed": seed, "skip_corrupt": skip}


def _images(directory: Path) -> list[Path]:
  """Image files under `directory`, recursively, sorted; hidden files and folders skipped."""
  found = []
  for parent, dirs, names in os.walk(directory):  # linked files count; linked folders (cycles) are not walked
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    found.extend(Path(parent, n) for n in names if not n.startswith(".") and n.lower().endswith(EXTENSIONS))
  return sorted(found)


def _classes(directory: Path) -> dict[str, list[Path]]:
  """Class folder name -> its images, for the class folders directly under `directory`."""
  return {d.name: _images(d) for d in sorted(directory.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def _quote(names) -> str:
  names = list(names)
  return ", ".join(names[:_SHOWN]) + (f" (and {len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")


def _rank(seed: int, name: str) -> str:
  return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def scan(path: str, options: dict) -> Scan:
  """Finds the layout, classes and files of the folder at `path` and checks them (no image is opened)."""
  options = check_options(options)
  if not path:
    raise DataError("dataset 'folder:' needs a path: dataset=folder:/path/to/images")
  root = Path(path).expanduser()
  if not root.is_dir():
    raise DataError(f"image folder {root} does not exist" if not root.exists() else f"{root} is not a folder")
  root = root.resolve()
  given = [d for d in VALIDATION_DIRS if (root / d).is_dir()]
  if (root / "train").is_dir() or given:
    if len(given) > 1:
      raise DataError(f"image folder {root} has both val/ and validation/: keep one")
    if not (root / "train").is_dir() or not given:
      have, missing = ("train/", "val/ (or validation/)") if not given else (f"{given[0]}/", "train/")
      raise DataError(f"image folder {root} has {have} but no {missing}")
    layout, splits = "train/val", {"train": _classes(root / "train"), "validation": _classes(root / given[0])}
  else:
    layout, splits = "classes", {"all": _classes(root)}
  for split, classes in splits.items():
    where = root / ("train" if split == "train" else given[0] if split == "validation" else "")
    if not any(classes.values()):
      found = "no class folders" if not classes else "no images"
      raise DataError(f"image folder {where} has {found}: expected <class>/<image> files "
                      f"({', '.join(EXTENSIONS)})")
    empty = [name for name, files in classes.items() if not files]
    if empty:
      raise DataError(f"image folder {where}: class folder(s) without images: {_quote(empty)}")
  if layout == "train/val":
    train, val = set(splits["train"]), set(splits["validation"])
    if train != val:
      parts = [f"only in train/: {_quote(sorted(train - val))}" if train - val else "",
               f"only in {given[0]}/: {_quote(sorted(val - train))}" if val - train else ""]
      raise DataError(f"image folder {root}: train/ and {given[0]}/ have different classes "
                      f"({'; '.join(p for p in parts if p)})")
    class_names = tuple(sorted(train))
    files = {split: tuple((p.relative_to(root).as_posix(), class_names.index(c))
                          for c in class_names for p in classes[c]) for split, classes in splits.items()}
    del options["validation_fraction"], options["split_seed"]  # no split is made
  else:
    class_names = tuple(sorted(splits["all"]))
    files = {"train": [], "validation": []}
    for label, name in enumerate(class_names):
      members = splits["all"][name]
      ranked = sorted(members, key=lambda p: _rank(options["split_seed"], p.relative_to(root / name).as_posix()))
      count = round(options["validation_fraction"] * len(members))
      if count == 0 or count == len(members):
        side = "validation" if count == 0 else "train"
        raise DataError(f"image folder {root}: class {name!r} has {len(members)} image(s), which leaves it no "
                        f"{side} images at validation_fraction={options['validation_fraction']:g} (add images "
                        "or change the fraction)")
      chosen = set(ranked[:count])
      for p in members:
        files["validation" if p in chosen else "train"].append((p.relative_to(root).as_posix(), label))
    files = {split: tuple(sorted(entries)) for split, entries in files.items()}
  stats = []
  for entries in files.values():
    for relative, _ in entries:
      st = (root / relative).stat()
      stats.append((relative, st.st_size, st.st_mtime_ns))
  return Scan(root, layout, class_names, files, tuple(sorted(stats)), options)


def _read(path: Path, check: bool = True) -> tuple[bytes | None, str | None]:
  """(what to store, None) for a readable image, (None, why) for a corrupt one; `check`: decode it fully even
  where its bytes are kept (`check_images` did that already before the files are stored).

  Stored: the file's own bytes when it is an 8-bit RGB JPEG or PNG (no generation loss, and the train pipeline
  decodes only the crop of a JPEG); anything else (grey, RGBA, palette, CMYK, 16-bit, GIF, BMP, WebP, TIFF)
  converted to RGB with PIL (alpha dropped, as torchvision's ImageFolder does) and stored as lossless PNG.
  Not resized: any train resolution stays possible and the crops see the original pixels, as they would
  reading the files themselves.
  """
  from PIL import Image  # pillow comes with matplotlib
  try:
    encoded = path.read_bytes()
    with Image.open(io.BytesIO(encoded)) as image:
      keep = image.format in ("JPEG", "PNG") and image.mode == "RGB"
      if check or not keep:
        image.load()  # a full decode: truncated and corrupt files fail here, not in the middle of training
      if keep:
        return encoded, None
      out = io.BytesIO()
      image.convert("RGB").save(out, format="PNG")
      return out.getvalue(), None
  except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
    return None, f"{type(e).__name__}: {e}"


def read_images(scan_: Scan, split: str, skipped=()):
  """Yields (relative path, label, encoded RGB JPEG/PNG bytes) of a split's readable images, in sorted order.

  `skipped`: the corrupt files `check_images` found (with ``skip_corrupt``), left out.
  """
  skipped = set(skipped)
  entries = [e for e in scan_.files[split] if e[0] not in skipped]
  with concurrent.futures.ThreadPoolExecutor(max(os.cpu_count() or 1, 2)) as pool:  # PIL decodes without the GIL
    for (relative, label), (encoded, _) in zip(entries, pool.map(lambda r: _read(scan_.root / r, check=False), (r for r, _ in entries))):
      if encoded is None:  # changed since check_images read it
        raise DataError(f"image folder {scan_.root}: {relative} became unreadable while it was prepared")
      yield relative, label, encoded


def check_images(scan_: Scan, progress=None) -> tuple[str, ...]:
  """Decodes every image once before anything is prepared; returns the corrupt ones' relative paths when
  ``skip_corrupt`` (with a warning naming how many and the first few), else raises a DataError naming them.
  A class left without train or validation images by skipping is an error too."""
  entries = [e for split in ("train", "validation") for e in scan_.files[split]]
  bad: list[tuple[str, str]] = []
  with concurrent.futures.ThreadPoolExecutor(max(os.cpu_count() or 1, 2)) as pool:
    results = pool.map(lambda e: _read(scan_.root / e[0])[1], entries)
    for (relative, _), why in zip(entries, progress(results, len(entries)) if progress else results):
      if why is not None:
        bad.append((relative, why))
  if not bad:
    return ()
  names = [relative for relative, _ in bad]
  if not scan_.options["skip_corrupt"]:
    raise DataError(f"image folder {scan_.root}: {len(bad)} unreadable image(s): {bad[0][0]} ({bad[0][1]})"
                    + (f"; also {_quote(names[1:])}" if len(bad) > 1 else "")
                    + "; fix or remove them, or set --config.dataset_options.skip_corrupt=True to leave them out")
  skipped = set(names)
  for split in ("train", "validation"):
    labels = {label for relative, label in scan_.files[split] if relative not in skipped}
    for label, name in enumerate(scan_.class_names):
      if label not in labels:
        raise DataError(f"image folder {scan_.root}: class {name!r} has no readable {split} images once the "
                        f"{len(bad)} unreadable ones are skipped")
  logging.warning("image folder %s: skipping %d unreadable image(s): %s", scan_.root, len(bad), _quote(names))
  return tuple(names)
