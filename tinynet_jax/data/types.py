"""The data package's value types: the dataset names, what a dataset is (`DatasetInfo`) and how it is
augmented (`Augment`, `RandAugmentSpec`); pure Python, validated on construction."""
from __future__ import annotations

import dataclasses
import functools
import math
import re

from tinynet_jax.errors import DataError

# The names this package defines; any TFDS image-classification dataset also works by its TFDS name, and a folder
# of images as 'folder:PATH' (tinynet_jax.data.folder).
DATASETS = ("digit_mosaic", "digits", "imagenet2012", "imagenet100", "imagenet100_cmc", "synthetic")
# What a training workdir records of its dataset (`DatasetInfo.to_dict`): predict and cam read the class names
# from it, so they need neither the data nor the folder it came from.
DATASET_FILE = "dataset.json"
INTERPOLATIONS = ("bicubic", "bilinear", "random")


@dataclasses.dataclass(frozen=True)
class RandAugmentSpec:
  """A parsed timm RandAugment string; field meanings follow `timm.data.rand_augment_transform`."""
  num_layers: int = 2
  magnitude: float = 10.0
  magnitude_std: float = 0.0  # inf = uniform in [0, magnitude]
  magnitude_max: float = 10.0
  prob: float = 0.5
  increasing: bool = False


@functools.lru_cache(maxsize=None)
def parse_randaugment(config: str) -> RandAugmentSpec:
  """``'rand-m9-mstd0.5'`` -> `RandAugmentSpec`, with timm's defaults (n=2, m=10, p=0.5, mmax=10).

  Supported sections: m, n, p, mstd (> 100 means uniform sampling), mmax, inc. timm's weighted transform sets
  ('t...') are not implemented.
  """
  parts = config.split("-")
  if parts[0] != "rand":
    raise DataError(f"randaugment must look like 'rand-m9-mstd0.5', got {config!r}")
  values: dict = {}
  for part in parts[1:]:
    key, number = (re.split(r"(\d.*)", part) + [""])[:2]
    try:
      if key == "m":
        values["magnitude"] = float(int(number))
      elif key == "n":
        values["num_layers"] = int(number)
      elif key == "p":
        values["prob"] = float(number)
      elif key == "mstd":
        std = float(number)
        values["magnitude_std"] = math.inf if std > 100 else std
      elif key == "mmax":
        values["magnitude_max"] = float(int(number))
      elif key == "inc":
        values["increasing"] = bool(int(number))
      else:
        raise ValueError
    except ValueError:
      raise DataError(f"randaugment {config!r}: unknown or malformed section {part!r} "
                      "(supported: m<int>, n<int>, p<float>, mstd<float>, mmax<int>, inc<0|1>)") from None
  spec = RandAugmentSpec(**values)
  if spec.num_layers < 0 or not 0 <= spec.prob <= 1 or spec.magnitude_std < 0:
    raise DataError(f"randaugment {config!r}: need n >= 0, 0 <= p <= 1 and mstd >= 0")
  return spec


@dataclasses.dataclass(frozen=True)
class Augment:
  """Train-time augmentation; defaults are the paper's MindSpore recipe for ImageNet."""
  crop_scale: tuple[float, float] = (0.08, 1.0)  # random-resized-crop area range
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = True
  # brightness/contrast/saturation strength; 0 disables; ignored when randaugment is set (timm disables it with AA)
  color_jitter: float = 0.4
  # timm string, e.g. 'rand-m9-mstd0.5' (2 ops, magnitude 9 +- N(0, 0.5), each op applied with p=0.5, 15 ops)
  randaugment: str | None = None
  # probability, timm 'pixel' mode (per-pixel N(0,1) in normalised space), area 0.02-1/3, aspect 0.3-3.3
  random_erasing: float = 0.0
  interpolation: str = "bicubic"  # 'bicubic' | 'bilinear' | 'random' (timm: random choice per image)

  def __post_init__(self):
    for field in ("crop_scale", "crop_ratio"):
      value = getattr(self, field)
      try:
        low, high = (float(v) for v in value)
      except (TypeError, ValueError):
        raise DataError(f"Augment.{field} must be a pair of numbers, got {value!r}") from None
      if not (0 < low <= high and math.isfinite(high)):
        raise DataError(f"Augment.{field} must satisfy 0 < low <= high, got {value!r}")
      object.__setattr__(self, field, (low, high))  # lists from configs become hashable tuples
    if not (0 <= self.color_jitter < math.inf):
      raise DataError(f"Augment.color_jitter must be >= 0, got {self.color_jitter!r}")
    if not 0 <= self.random_erasing <= 1:
      raise DataError(f"Augment.random_erasing is a probability, got {self.random_erasing!r}")
    if self.interpolation not in INTERPOLATIONS:
      raise DataError(f"Augment.interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                      f"got {self.interpolation!r}")
    if self.randaugment:
      parse_randaugment(self.randaugment)

  @property
  def randaugment_spec(self) -> RandAugmentSpec | None:
    return parse_randaugment(self.randaugment) if self.randaugment else None


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  num_train: int
  num_eval: int
  label_names: tuple[str, ...] | None = dataclasses.field(default=None, repr=False)  # 1000 wnids: keep repr short

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, fields: dict) -> "DatasetInfo":
    names = fields.get("label_names")
    return cls(fields["name"], int(fields["num_classes"]), int(fields["num_train"]), int(fields["num_eval"]),
               tuple(str(n) for n in names) if names is not None else None)
