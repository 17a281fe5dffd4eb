"""Training configuration: defaults, the paper's recipes as presets, the config-arg parser, validation.

Config files in ``configs/`` build on `base_config()`; see ``configs/train.py``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import ml_collections
from ml_collections import config_dict

from tinynet_jax.errors import ConfigError
from tinynet_jax.arch import ModelSpec, model_spec

# The official MindSpore TinyNet recipe (tinynet.md §4.1): RMSProp (TF semantics), lr 0.048 per 1024 images,
# 3 warmup epochs from 1e-6, x0.97 every 2.4 epochs, 450 epochs, wd 1e-5 (not on 1-D params), label smoothing
# 0.1 (MindSpore form), EMA 0.9999, dropout 0.2, drop path 0 (TinyNet-B: MODEL_RECIPES), crop + flip + color jitter.
PAPER = dict(
    optimizer="rmsprop_tf", lr_per_1024=0.048, momentum=0.9, rms_decay=0.9, opt_eps=1e-3, weight_decay=1e-5,
    warmup_epochs=3.0, warmup_lr=1e-6, decay_epochs=2.4, decay_rate=0.97, num_epochs=450.0,
    label_smoothing=0.1, exclusive_smoothing=True, ema_decay=0.9999, ema_warmup=False, drop_rate=0.2,
    drop_path_rate=0.0,
    augment=dict(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip=True, color_jitter=0.4,
                 randaugment="", random_erasing=0.0, interpolation="bicubic"),
)
# timm's RandAugment recipe behind "TinyNet-A + RA 77.7%" (tinynet.md §4.2): rand-m9-mstd0.5, random erasing
# 0.2 (pixel mode), drop path 0.2, timm-style label smoothing, random interpolation, no color jitter.
RA = dict(PAPER, drop_path_rate=0.2, exclusive_smoothing=False,
          augment=dict(PAPER["augment"], color_jitter=0.0, randaugment="rand-m9-mstd0.5", random_erasing=0.2,
                       interpolation="random"))
RECIPES = {"paper": PAPER, "ra": RA}
# What config.best_metric may name: the eval top-1 of the EMA or of the raw weights (higher is better).
BEST_METRICS = ("ema_top1", "top1")
# Per-model departures from a recipe, (recipe, model) -> fields. The official trainer's README: "change
# drop-connect to 0.1 for training tinynet_b".
MODEL_RECIPES = {("paper", "tinynet_b"): dict(drop_path_rate=0.1)}


# The 8x8 digits fill their frame: a crop cuts the strokes that define the class (with crops of 35-100% of the
# area a small net reaches 27% train accuracy in 150 steps where uncropped it reaches 88%), and flips turn
# digits into other glyphs. So digits train and evaluate on whole, unflipped images.
WHOLE_IMAGES = dict(eval_crop_pct=1.0,
                    augment=dict(flip=False, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), color_jitter=0.0))


def apply_whole_images(config: ml_collections.ConfigDict) -> None:
  """Train and evaluate on whole, unflipped, unjittered images (digits)."""
  config.eval_crop_pct = WHOLE_IMAGES["eval_crop_pct"]
  config.augment.update(WHOLE_IMAGES["augment"])


def folder_options() -> dict[str, Any]:
  """dataset=folder:PATH's options (`tinynet_jax.data.folder`), unset = its defaults: split rule of a single
  <class>/ folder (validation_fraction 0.2, split_seed 0), and whether unreadable images are left out (with a
  warning) instead of stopping the run."""
  return dict(validation_fraction=config_dict.placeholder(float), split_seed=config_dict.placeholder(int),
              skip_corrupt=config_dict.placeholder(bool))


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
  """``'model=tinynet_a,dataset=digits,runlocal'`` -> ConfigDict, typed by `defaults` (big_vision style).

  A bare key means True; values are converted to the default's type; unknown keys are an error.
  """
  result = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ConfigError(f"unknown config argument {key!r} (known: {', '.join(defaults)})")
    default = defaults[key]
    if not sep:
      value = True
    elif isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ConfigError(f"config argument {key}={value!r} is not a boolean")
      value = value.lower() in ("true", "1")
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
      try:
        value = type(default)(value)
      except ValueError:
        raise ConfigError(f"config argument {key}={value!r} is not a {type(default).__name__}") from None
    result[key] = value
  return result


def base_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, with the paper recipe applied."""
  c = ml_collections.ConfigDict()
  c.job = "train"  # what python -m tinynet_jax.main runs (configs/sweep.py: "sweep", configs/eval.py: "eval")
  # Model: a zoo name, or a point (r, d, w) of the cube under `rules`.
  c.model = "tinynet_a"
  c.r = config_dict.placeholder(float)
  c.d = config_dict.placeholder(float)
  c.w = config_dict.placeholder(float)
  c.rules = "tinynet"
  c.base_resolution = 224  # input = int(base_resolution * r); the demo sweeps use a smaller base
  c.resolution = config_dict.placeholder(int)  # explicit input size override
  c.dtype = "auto"  # compute dtype: 'auto' = bfloat16 on GPU/TPU, float32 on CPU
  c.depthwise_impl = "auto"  # 'shift' on CPU (4x faster train step on XLA:CPU), 'xla' on accelerators
  c.fast_compile = "auto"  # 'auto' = 'on' on CPU: skip LLVM's expensive passes, half the compile time
  c.sync_bn = False  # per-replica BN statistics like the reference's 8 GPUs x 128; True = cross-replica
  # Data.
  c.dataset = "imagenet2012"
  c.data_dir = config_dict.placeholder(str)
  # Per-dataset options; unset (None) ones are not passed. 'synthetic' reads the sizes, TFDS sources the rest.
  # Sweeps: the train split lives on the accelerator as uint8 and is augmented inside the step (no RandAugment
  # or random erasing there); images stored square at resident_size (default: base_resolution).
  c.data_on_device = False
  c.resident_size = config_dict.placeholder(int)
  c.eval_crop_pct = 0.875  # eval: resize the short side to res / eval_crop_pct, centre-crop res (timm)
  c.dataset_options = ml_collections.ConfigDict(dict(
      num_classes=config_dict.placeholder(int), num_train=config_dict.placeholder(int),
      num_eval=config_dict.placeholder(int), train_split=config_dict.placeholder(str),
      eval_split=config_dict.placeholder(str), in_memory=config_dict.placeholder(bool), **folder_options()))
  # Schedule. Each duration (total length, warm-up, decay period) is given in one unit, steps, epochs or
  # examples (big_vision's convention; see `schedule_lengths`); the recipe sets the epochs. total_steps, when
  # set, overrides the total's other unit (how a command line shortens any run).
  c.batch_size = 1024  # global, over all devices and processes
  c.eval_batch_size = config_dict.placeholder(int)  # default: batch_size
  c.num_epochs = 450.0
  c.total_steps = config_dict.placeholder(int)
  c.total_examples = config_dict.placeholder(int)
  c.warmup_steps = config_dict.placeholder(int)  # with warmup_epochs unset: set_duration(c, "warmup", steps=10)
  c.warmup_examples = config_dict.placeholder(int)
  c.decay_steps = config_dict.placeholder(int)
  c.decay_examples = config_dict.placeholder(int)
  c.log_every_steps = 100
  c.eval_every_steps = config_dict.placeholder(int)  # default: once per epoch
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3  # the newest ones, for resume; the best by best_metric is kept besides them
  # The eval metric that picks the best checkpoint (a save at every eval step, never deleted; final_metrics.json's
  # "best_checkpoint"): the EMA weights' top-1, as the official trainer picks its reported epoch, or 'top1'.
  c.best_metric = "ema_top1"
  c.seed = 0
  c.recipe = "paper"
  apply_recipe(c, "paper")
  return c


def apply_recipe(config: ml_collections.ConfigDict, name: str, model: str | None = None) -> None:
  """Sets recipe `name`'s fields, with `model`'s departures from it (`MODEL_RECIPES`)."""
  if name not in RECIPES:
    raise ConfigError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
  preset = dict(RECIPES[name], **MODEL_RECIPES.get((name, model), {}))
  augment = preset.pop("augment")
  config.recipe = name
  for key, value in preset.items():
    config[key] = value
  config.augment = ml_collections.ConfigDict(augment)


def apply_short_schedule(config: ml_collections.ConfigDict, *, batch_size: int, decay_rate: float, ema_decay: float,
                         log_every_steps: int, checkpoint_every_steps: int, num_epochs: float | None = None,
                         total_steps: int | None = None, warmup_epochs: float = 1.0) -> None:
  """The paper's recipe cut to a short run (sweep models, laptops), length in epochs or steps.

  The LR decays every epoch by `decay_rate`, where the recipe's x0.97 per 2.4 epochs would leave it too high for
  a run of a few epochs to converge, and the EMA warms up (decay min(ema_decay, (1 + t) / (10 + t))) so that its
  weights are not still mostly the initial ones when the run ends.
  """
  if (num_epochs is None) == (total_steps is None):
    raise ConfigError("give a short schedule's length as exactly one of num_epochs, total_steps")
  config.batch_size = batch_size
  if num_epochs is not None:
    config.num_epochs = num_epochs
  else:
    config.total_steps = total_steps
  config.warmup_epochs = warmup_epochs
  config.decay_epochs = 1.0
  config.decay_rate = decay_rate
  config.ema_decay = ema_decay
  config.ema_warmup = True
  config.log_every_steps = log_every_steps
  config.checkpoint_every_steps = checkpoint_every_steps


def model_spec_from_config(config) -> ModelSpec:
  knobs = {k: config[k] for k in ("r", "d", "w") if config[k] is not None}
  if knobs:
    return model_spec(**knobs, rules=config.rules, base_resolution=config.base_resolution,
                      resolution=config.resolution)
  if not config.model:
    raise ConfigError("set config.model to a zoo name, or config.r / config.d / config.w")
  return model_spec(config.model, base_resolution=config.base_resolution, resolution=config.resolution)


def dataset_options(config) -> dict[str, Any]:
  """The dataset options that are set."""
  return {k: v for k, v in config.dataset_options.items() if v is not None}


# Each duration's fields, in the units steps, epochs, examples. The total's epochs keep their old name.
DURATIONS = {
    "total": ("total_steps", "num_epochs", "total_examples"),
    "warmup": ("warmup_steps", "warmup_epochs", "warmup_examples"),
    "decay": ("decay_steps", "decay_epochs", "decay_examples"),
}


@dataclasses.dataclass(frozen=True)
class Duration:
  """`count` units of `unit_steps` steps each. Epochs stay whole units: the recipe's LR moves once per epoch
  (MindSpore, timm's per-epoch StepLR), so a 2.4-epoch decay period steps at epoch 3, not mid-epoch 2. Steps and
  examples are counted in steps (unit_steps = 1), so a warm-up of 10 steps ramps step by step."""
  count: float
  unit_steps: int

  @property
  def steps(self) -> float:
    return self.count * self.unit_steps


@dataclasses.dataclass(frozen=True)
class ScheduleLengths:
  """The schedule's durations resolved to steps (`schedule_lengths`), what the loop and optimizer consume."""
  steps_per_epoch: int
  total_steps: int
  warmup: Duration
  decay: Duration


def set_duration(config: ml_collections.ConfigDict, name: str, *, steps: int | None = None,
                 epochs: float | None = None, examples: int | None = None) -> None:
  """Gives duration `name` ('total', 'warmup' or 'decay') in one unit and unsets its others."""
  if name not in DURATIONS:
    raise ConfigError(f"unknown duration {name!r} (known: {', '.join(DURATIONS)})")
  values = (steps, epochs, examples)
  if sum(v is not None for v in values) != 1:
    raise ConfigError(f"give the {name} duration in exactly one of steps, epochs, examples")
  for field, value in zip(DURATIONS[name], values):
    config[field] = value


def _duration(config, name: str, steps_per_epoch: int, *, positive: bool, skip: str | None = None) -> Duration:
  """Duration `name` from its one set field; one-line ConfigErrors for none, two, or a bad value."""
  fields = [f for f in DURATIONS[name] if f != skip]
  given = [f for f in fields if config.get(f) is not None]
  if len(given) != 1:
    problem = "is not set" if not given else "is given twice (" + ", ".join(f"{f}={config[f]}" for f in given) + ")"
    raise ConfigError(f"the {name} duration {problem}: set exactly one of {', '.join(fields)} (a config file "
                      f"switches units with tinynet_jax.train.config.set_duration)")
  field, value = given[0], config[given[0]]
  bound = "> 0" if positive else ">= 0"
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
      or value < 0 or (positive and value == 0):
    raise ConfigError(f"{field} must be a finite number {bound}, got {value!r}")
  if field.endswith("_epochs"):
    return Duration(value, steps_per_epoch)
  if field.endswith("_examples"):
    return Duration(value / config.batch_size, 1)
  return Duration(value, 1)


def schedule_lengths(config, num_train: int) -> ScheduleLengths:
  """Every duration of the schedule in steps, for a dataset of `num_train` examples: the one place that reads
  the *_steps / *_epochs / *_examples fields (exactly one per duration; total_steps overrides the total's)."""
  steps_per_epoch = max(1, num_train // config.batch_size)
  if config.total_steps is not None:
    if isinstance(config.total_steps, bool) or not isinstance(config.total_steps, int) or config.total_steps <= 0:
      raise ConfigError(f"total_steps must be a positive integer, got {config.total_steps!r}")
    total_steps = config.total_steps
  else:
    total_steps = max(1, math.ceil(_duration(config, "total", steps_per_epoch, positive=True,
                                             skip="total_steps").steps))
  return ScheduleLengths(steps_per_epoch, total_steps,
                         warmup=_duration(config, "warmup", steps_per_epoch, positive=False),
                         decay=_duration(config, "decay", steps_per_epoch, positive=True))


def check_config(config, process_count: int, device_count: int) -> None:
  """Field checks that need no data or model (those raise their own errors)."""
  if config.recipe not in RECIPES:
    raise ConfigError(f"unknown recipe {config.recipe!r} (known: {', '.join(RECIPES)})")
  for key in ("batch_size", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    if not isinstance(config[key], int) or config[key] <= 0:
      raise ConfigError(f"{key} must be a positive integer, got {config[key]!r}")
  for key in ("batch_size", "eval_batch_size"):
    size = config[key] or config.batch_size
    if size % device_count or size % process_count:
      raise ConfigError(f"{key}={size} must divide evenly over {device_count} devices "
                        f"and {process_count} processes")
  if config.best_metric not in BEST_METRICS:
    raise ConfigError(f"best_metric must be {' or '.join(BEST_METRICS)}, got {config.best_metric!r}")
  if config.depthwise_impl not in ("auto", "xla", "shift"):
    raise ConfigError(f"depthwise_impl must be auto, xla or shift, got {config.depthwise_impl!r}")
  if config.fast_compile not in ("auto", "on", "off"):
    raise ConfigError(f"fast_compile must be auto, on or off, got {config.fast_compile!r}")
  if config.dtype not in ("auto", "float32", "bfloat16", "float16"):
    raise ConfigError(f"dtype must be auto, float32, bfloat16 or float16, got {config.dtype!r}")
  if not 0 < config.eval_crop_pct <= 1:
    raise ConfigError(f"eval_crop_pct must be in (0, 1], got {config.eval_crop_pct}")
  if not 0 <= config.ema_decay < 1:
    raise ConfigError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
