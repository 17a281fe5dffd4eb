"""Training configuration: defaults, the paper's recipes as presets, the config-arg parser, validation.

Config files in ``configs/`` build on `base_config()`; see ``configs/train.py``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable, Mapping

import ml_collections
from ml_collections import config_dict

from tinynet_jax.errors import ConfigError, TinynetError
from tinynet_jax.arch import RULES, ModelSpec, model_spec
from tinynet_jax.data.types import INTERPOLATIONS, parse_randaugment

# The official MindSpore TinyNet recipe (tinynet.md §4.1): RMSProp (TF semantics), lr 0.048 at a global batch of
# 1024 (8 GPUs x 128; every recipe's LR is scaled linearly from its lr_batch_size to batch_size), 3 warmup epochs from 1e-6, x0.97 every 2.4 epochs, 450 epochs, wd 1e-5 (not on 1-D params), label smoothing
# 0.1 (MindSpore form), EMA 0.9999, dropout 0.2, drop path 0 (TinyNet-B: MODEL_RECIPES), crop + flip + color jitter.
PAPER = dict(
    optimizer="rmsprop_tf", lr=0.048, lr_batch_size=1024, momentum=0.9, rms_decay=0.9, opt_eps=1e-3, weight_decay=1e-5,
    warmup_epochs=3.0, warmup_lr=1e-6, decay_epochs=2.4, decay_rate=0.97, num_epochs=450.0,
    label_smoothing=0.1, exclusive_smoothing=True, ema_decay=0.9999, ema_warmup=False, drop_rate=0.2,
    drop_path_rate=0.0,
    augment=dict(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip=True, color_jitter=0.4,
                 randaugment="", random_erasing=0.0, interpolation="bicubic"),
)
# timm's RandAugment recipe behind "TinyNet-A + RA 77.7%" (tinynet.md §4.2): rand-m9-mstd0.5, random erasing
# 0.2 (pixel mode), drop path 0.2, timm-style label smoothing, random interpolation, no color jitter. timm's
# command for it (EfficientNet-B0 + RA, which TinyNet-A's used) is `distributed_train.sh 2 ... -b 384 --lr .048`:
# lr 0.048 at a global batch of 2 x 384 = 768, so at the paper's 1024 it trains at 0.064.
RA = dict(PAPER, lr_batch_size=768, drop_path_rate=0.2, exclusive_smoothing=False,
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

  A bare key means True (booleans only); values are converted to the default's type; unknown or repeated keys
  are an error. A `config_dict.placeholder(type)` default is None unless given, so that a config can tell a
  value given on the command line (``per_level=0``: an error) from one left out.
  """
  result = ml_collections.ConfigDict(defaults)
  seen = set()
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ConfigError(f"unknown config argument {key!r} (known: {', '.join(defaults)})")
    if key in seen:
      raise ConfigError(f"config argument {key} is given twice")
    seen.add(key)
    default = defaults[key]
    kind = default.get_type() if isinstance(default, config_dict.FieldReference) else type(default)
    if not sep:
      if kind is not bool:
        raise ConfigError(f"config argument {key} needs a value ({key}=...)")
      value = True
    elif kind is bool:
      if value.lower() not in ("true", "false", "1", "0"):
        raise ConfigError(f"config argument {key}={value!r} is not a boolean")
      value = value.lower() in ("true", "1")
    elif kind in (int, float):
      try:
        value = kind(value)
      except ValueError:
        wanted = "an integer" if kind is int else "a number"
        raise ConfigError(f"config argument {key}={value!r} is not {wanted}") from None
    result[key] = value
  return result


DEFAULT_RULES = "tinynet"


def base_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, with the paper recipe applied."""
  c = ml_collections.ConfigDict()
  c.job = "train"  # what python -m tinynet_jax.main runs (configs/sweep.py: "sweep", configs/eval.py: "eval")
  # Model: a zoo name, or a point (r, d, w) of the cube under `rules`.
  c.model = "tinynet_a"
  c.r = config_dict.placeholder(float)
  c.d = config_dict.placeholder(float)
  c.w = config_dict.placeholder(float)
  c.rules = DEFAULT_RULES  # for r/d/w; a zoo model has its own
  c.base_resolution = 224  # input = int(base_resolution * r); the demo sweeps use a smaller base
  c.resolution = config_dict.placeholder(int)  # explicit input size override
  c.dtype = "auto"  # compute dtype: 'auto' = bfloat16 on GPU/TPU, float32 on CPU
  c.depthwise_impl = "auto"  # 'shift' on CPU (4x faster train step on XLA:CPU), 'xla' on accelerators
  c.fast_compile = "auto"  # 'auto' = 'on' on CPU: skip LLVM's expensive passes, half the compile time
  # The optimizer's update on one flat vector (optax.flatten): one kernel instead of one per parameter, ~12% less
  # XLA:CPU train-step compile (the CPU sweeps set it); the optimizer state is then one vector per buffer.
  c.flat_optimizer = False
  c.sync_bn = False  # per-replica BN statistics like the reference's 8 GPUs x 128; True = cross-replica
  # Images per BN statistics group in training, on any device layout: 128 = the reference's 8 GPUs x 128 on one
  # GPU at 1024 (8 groups), 8 x 128 (per replica) or a pod at 32 per device (a group spans 4 devices).
  # None: per replica unless sync_bn.
  c.bn_group_size = config_dict.placeholder(int)
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


def _duration(config, name: str, steps_per_epoch: int, *, skip: str | None = None) -> Duration:
  """Duration `name` from its one set field; one-line ConfigErrors for none, two, or a bad value."""
  fields = [f for f in DURATIONS[name] if f != skip]
  given = [f for f in fields if config.get(f) is not None]
  if len(given) != 1:
    problem = "is not set" if not given else "is given twice (" + ", ".join(f"{f}={config[f]}" for f in given) + ")"
    raise ConfigError(f"the {name} duration {problem}: set exactly one of {', '.join(fields)} (a config file "
                      f"switches units with tinynet_jax.train.config.set_duration)")
  field, value = given[0], config[given[0]]
  TRAIN_FIELDS[field].check(field, value)  # also for configs that skip check_config (evaluation's)
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
    TRAIN_FIELDS["total_steps"].check("total_steps", config.total_steps)
    total_steps = config.total_steps
  else:
    total_steps = max(1, math.ceil(_duration(config, "total", steps_per_epoch, skip="total_steps").steps))
  return ScheduleLengths(steps_per_epoch, total_steps, warmup=_duration(config, "warmup", steps_per_epoch),
                         decay=_duration(config, "decay", steps_per_epoch))


# ---- validation: what each field may hold --------------------------------------------------------------------
# Every field a user can set has a rule in a table (`TRAIN_FIELDS` here, the sweep's and the evaluation's next to
# their runners), checked in one pass before anything is written: a bad value is a one-line ConfigError naming
# the field, the value and what is allowed, never replaced by a default. Adding a field means adding its row.


@dataclasses.dataclass(frozen=True)
class Rule:
  """What a field may hold: `accepts(value)` is true for a good value and `allowed` says which those are, for
  the error ``<field> must be <allowed>, got <value>``. An `accepts` that raises a TinynetError (a library's own
  check, e.g. of a RandAugment string) explains the problem itself: ``<field>: <its message>``."""
  allowed: str
  accepts: Callable[[Any], bool]

  def check(self, name: str, value: Any) -> None:
    try:
      good = self.accepts(value)
    except TinynetError as e:
      raise ConfigError(str(e) if str(e).startswith(name + " ") else f"{name}: {e}") from None
    if not good:
      raise ConfigError(f"{name} must be {self.allowed}, got {value!r}")


def _is_int(value) -> bool:  # True is an int to Python, never to a config
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def optional(rule: Rule) -> Rule:
  """`rule`, or None (unset: the field's documented default applies)."""
  return Rule(rule.allowed, lambda v: v is None or rule.accepts(v))


def integer(low: int | None = None, high: int | None = None) -> Rule:
  if (low, high) == (1, None):
    allowed = "a positive integer"
  elif high is None:
    allowed = "an integer" if low is None else f"an integer >= {low}"
  else:
    allowed = f"an integer in [{low}, {high}]"
  return Rule(allowed, lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high))


def interval(spec: str) -> Rule:
  """A finite number in the interval `spec`, written as in maths: '[0, 1)', '(0, 4]'."""
  low, high = (float(x) for x in spec[1:-1].split(","))
  above = (lambda v: v > low) if spec[0] == "(" else (lambda v: v >= low)
  below = (lambda v: v < high) if spec[-1] == ")" else (lambda v: v <= high)
  return Rule(f"in {spec}", lambda v: _is_real(v) and above(v) and below(v))


def pair(element: Rule, *, strict: bool = False) -> Rule:
  """A (low, high) pair of `element`s, low <= high (< when `strict`)."""
  order = "<" if strict else "<="

  def accepts(v):
    return (isinstance(v, (tuple, list)) and len(v) == 2 and all(element.accepts(x) for x in v)
            and (v[0] < v[1] if strict else v[0] <= v[1]))
  return Rule(f"a (low, high) pair, each {element.allowed}, with low {order} high", accepts)


def choice(*options: str) -> Rule:
  return Rule(f"one of {', '.join(options)}", lambda v: isinstance(v, str) and v in options)


positive = Rule("a finite number > 0", lambda v: _is_real(v) and v > 0)
non_negative = Rule("a finite number >= 0", lambda v: _is_real(v) and v >= 0)
positive_int = integer(1)
boolean = Rule("True or False", lambda v: isinstance(v, bool))
text = Rule("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
# `--config.x=None` sets the string 'None' (config_flags), which would name a directory 'None': refuse it.
optional_text = Rule("a non-empty string, or unset (left out: None on the command line is the string 'None')",
                     lambda v: v is None or (text.accepts(v) and v != "None"))
probability = interval("[0, 1]")
fraction = interval("[0, 1)")  # decays, smoothing, drop rates: 1 would freeze or drop everything
# jax.random.key(seed) wraps at 2^32 (seed 2^32 is seed 0), and the trainer also uses seed + 1 and seed + 2.
seed = integer(0, 2 ** 31 - 1)
randaugment = Rule("'' or a RandAugment string such as 'rand-m9-mstd0.5'",  # parse_randaugment: bad sections
                   lambda v: v is None or isinstance(v, str) and (not v or parse_randaugment(v) is not None))

# dataset_options (`tinynet_jax.data`): sizes for 'synthetic', splits and in_memory for TFDS sources, the split
# rule for folder:PATH. Whether a dataset takes an option is the data package's check (unknown options fail).
DATASET_OPTIONS = {
    "num_classes": optional(positive_int), "num_train": optional(positive_int), "num_eval": optional(positive_int),
    "train_split": optional_text, "eval_split": optional_text, "in_memory": optional(boolean),
    "validation_fraction": optional(interval("(0, 1)")), "split_seed": optional(integer()),
    "skip_corrupt": optional(boolean),
}
OPTIMIZERS = ("rmsprop_tf", "sgd")

TRAIN_FIELDS: dict[str, Rule] = {
    "job": choice("train"),
    "model": Rule("a zoo model name, or '' for r/d/w", lambda v: isinstance(v, str)),  # the name: model_spec
    "r": optional(positive), "d": optional(positive), "w": optional(positive),
    "rules": choice(*RULES),
    "base_resolution": positive_int, "resolution": optional(positive_int),
    "dtype": choice("auto", "float32", "bfloat16", "float16"),
    "depthwise_impl": choice("auto", "xla", "shift"),
    "fast_compile": choice("auto", "on", "off"), "flat_optimizer": boolean,
    "sync_bn": boolean, "bn_group_size": optional(positive_int),
    "dataset": text, "data_dir": optional_text,
    "data_on_device": boolean, "resident_size": optional(positive_int),
    "eval_crop_pct": interval("(0, 1]"),
    **{f"dataset_options.{k}": rule for k, rule in DATASET_OPTIONS.items()},
    "batch_size": positive_int, "eval_batch_size": optional(positive_int),
    # Durations: `schedule_lengths` takes exactly one unit of each; these say what a given one may be.
    "total_steps": optional(positive_int), "num_epochs": optional(positive), "total_examples": optional(positive),
    "warmup_steps": optional(integer(0)), "warmup_epochs": optional(non_negative),
    "warmup_examples": optional(non_negative),
    "decay_steps": optional(positive_int), "decay_epochs": optional(positive), "decay_examples": optional(positive),
    "log_every_steps": positive_int, "eval_every_steps": optional(positive_int),
    "checkpoint_every_steps": positive_int, "keep_checkpoints": positive_int,
    "best_metric": choice(*BEST_METRICS),
    "seed": seed,
    "recipe": choice(*RECIPES),
    # The recipe's fields.
    "optimizer": choice(*OPTIMIZERS),
    "lr": positive, "lr_batch_size": positive_int,  # lr at a global batch of lr_batch_size, scaled linearly
    "momentum": fraction, "rms_decay": fraction, "opt_eps": positive, "weight_decay": non_negative,
    "warmup_lr": non_negative, "decay_rate": interval("(0, 1]"),
    "label_smoothing": fraction, "exclusive_smoothing": boolean,
    "ema_decay": fraction, "ema_warmup": boolean,
    "drop_rate": fraction, "drop_path_rate": fraction,
    "augment.crop_scale": pair(interval("(0, 1]")),  # of the image's area
    "augment.crop_ratio": pair(positive),
    "augment.flip": boolean,
    "augment.color_jitter": non_negative,
    "augment.randaugment": randaugment,
    "augment.random_erasing": probability,
    "augment.interpolation": choice(*INTERPOLATIONS),
}


def _leaves(config, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, Any]:
  """{dotted name: value} of every field of `config` that is not a ConfigDict, less the subtrees in `skip`."""
  leaves = {}
  for key, value in config.items():
    name = prefix + key
    if name in skip:
      continue
    if isinstance(value, (ml_collections.ConfigDict, Mapping)):
      leaves.update(_leaves(value, name + ".", skip))
    else:
      leaves[name] = value
  return leaves


def check_fields(config, table: Mapping[str, Rule], *, prefix: str = "", skip: tuple[str, ...] = ()) -> None:
  """Every field of `config` against its rule in `table`; `prefix` names `config` in the messages ('train.').
  A field without a rule is an error too: nothing would read it (a misspelling in a config file)."""
  leaves = _leaves(config, skip=skip)
  unknown = sorted(set(leaves) - set(table))
  if unknown:
    raise ConfigError(f"unknown config field {prefix}{unknown[0]}: nothing reads it")
  for name, rule in table.items():
    rule.check(prefix + name, leaves.get(name))


def check_config(config, process_count: int, device_count: int, *, prefix: str = "") -> None:
  """Every field against `TRAIN_FIELDS`, then the rules between fields. Needs no data or model: the dataset's
  name and options, the zoo name and the durations' units raise their own errors when they are read."""
  check_fields(config, TRAIN_FIELDS, prefix=prefix)
  knobs = [f"{k}={config[k]:g}" for k in ("r", "d", "w") if config[k] is not None]
  if config.model and knobs:
    raise ConfigError(f"give either {prefix}model={config.model!r} or {prefix}r/d/w ({', '.join(knobs)}), not "
                      f"both: set {prefix}model='' to train r/d/w")
  if config.model and config.rules != DEFAULT_RULES:
    raise ConfigError(f"{prefix}rules={config.rules!r} applies to r/d/w; the zoo model {config.model!r} has its "
                      "own rules")
  if config.resident_size is not None and not config.data_on_device:
    raise ConfigError(f"{prefix}resident_size={config.resident_size} is the size of device-resident images: set "
                      f"{prefix}data_on_device=True too, or leave it unset")
  for key in ("batch_size", "eval_batch_size"):
    size = config.batch_size if config[key] is None else config[key]
    if size % device_count or size % process_count:
      raise ConfigError(f"{prefix}{key}={size} must divide evenly over {device_count} devices "
                        f"and {process_count} processes")
  if config.get("bn_group_size") is not None:
    check_bn_group_size(config, device_count, prefix)


def check_bn_group_size(config, device_count: int, prefix: str = "") -> None:
  """bn_group_size (a positive integer by its rule) must tile the global batch: groups within a device's batch,
  or whole groups of consecutive devices. The eval step normalises with the running statistics, so the eval
  batch is free."""
  size = config.bn_group_size
  if config.sync_bn:
    raise ConfigError(f"{prefix}bn_group_size={size} conflicts with {prefix}sync_bn=True (statistics of the whole "
                      "global batch): set one of them")
  per_device = config.batch_size // device_count
  if per_device % size and (size % per_device or device_count % (size // per_device)):
    raise ConfigError(f"{prefix}bn_group_size={size} must divide the per-device batch {per_device} "
                      f"({prefix}batch_size={config.batch_size} over {device_count} devices) or be a multiple of "
                      f"it spanning a number of devices that divides {device_count}")
