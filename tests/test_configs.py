"""Every config file builds for its arguments, and the tables in them agree with the zoo."""
import importlib.util
import os

import pytest

from conftest import REPO
from tinynet_jax.errors import ConfigError
from tinynet_jax.arch import ZOO, model_spec
from tinynet_jax.train.config import model_spec_from_config


def load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


CASES = [("train", None), ("train", "model=tinynet_e,dataset=digits,runlocal"), ("train", "r=0.7,d=0.9,w=0.6"),
         ("train", "model=tinynet_b,recipe=ra,dataset=imagenet100"), ("train", "dataset=synthetic")]
CASES += [("imagenet", f"model={name},recipe={recipe}") for name in ZOO for recipe in ("paper", "ra")]


@pytest.mark.parametrize("name, arg", CASES, ids=[f"{n}:{a}" for n, a in CASES])
def test_config_builds(name, arg):
  config = load(name).get_config(arg)
  spec = model_spec_from_config(config)
  assert spec.resolution > 0 and config.batch_size > 0
  config.lock()
  with pytest.raises(AttributeError):
    config.batchsize = 1  # locked: misspelled fields fail


def test_recipes_read_like_the_paper():
  paper = load("train").get_config("model=tinynet_b")
  assert (paper.optimizer, paper.lr, paper.lr_batch_size, paper.opt_eps, paper.weight_decay) == (
      "rmsprop_tf", 0.048, 1024, 1e-3, 1e-5)
  assert (paper.warmup_epochs, paper.decay_epochs, paper.decay_rate, paper.num_epochs) == (3, 2.4, 0.97, 450)
  assert (paper.ema_decay, paper.drop_rate, paper.drop_path_rate, paper.label_smoothing) == (0.9999, 0.2, 0.1, 0.1)
  assert load("train").get_config("model=tinynet_c").drop_path_rate == 0.0
  ra = load("train").get_config("recipe=ra")
  assert (ra.augment.randaugment, ra.augment.random_erasing, ra.drop_path_rate) == ("rand-m9-mstd0.5", 0.2, 0.2)


def test_each_recipe_trains_at_its_reference_lr():
  """The peak LR, from the commands behind each recipe (tinynet.md §4): the official trainer's --lr 0.048 at
  8 GPUs x 128, timm's RA command's --lr .048 at 2 x 384 (768), each scaled linearly to the run's batch."""
  from tinynet_jax.train.config import schedule_lengths
  from tinynet_jax.train.optim import make_optimizer
  for recipe, batch, peak in [("paper", 1024, 0.048), ("paper", 768, 0.036), ("ra", 768, 0.048),
                              ("ra", 1024, 0.064), ("ra", 384, 0.024)]:
    config = load("train").get_config(f"recipe={recipe}")
    config.batch_size = batch
    _, schedule = make_optimizer(config, schedule_lengths(config, 1_281_167))
    after_warmup = 3 * (1_281_167 // batch)  # epoch 3: the base LR x 0.97 ** floor(3 / 2.4)
    assert float(schedule(after_warmup)) == pytest.approx(peak * 0.97, rel=1e-6), (recipe, batch)


def test_imagenet_configs_are_the_zoo():
  """configs/imagenet.py has one config per zoo model, building exactly that model with train.py's recipe."""
  imagenet, train = load("imagenet"), load("train")
  for name in ZOO:
    config = imagenet.get_config(f"model={name}")
    assert model_spec_from_config(config) == model_spec(name)
    for recipe in ("paper", "ra"):
      ours, theirs = (c.get_config(f"model={name},recipe={recipe}") for c in (imagenet, train))
      assert ours.drop_path_rate == theirs.drop_path_rate
  # The paper recipe's one per-model departure: drop path 0.1 for TinyNet-B only (official README).
  assert [n for n in ZOO if imagenet.get_config(f"model={n}").drop_path_rate] == ["tinynet_b"]
  assert imagenet.get_config("model=tinynet_b").drop_path_rate == 0.1
  with pytest.raises(ConfigError, match="rows: " + ", ".join(ZOO)):
    imagenet.get_config("model=resnet50")


def check(config, job=None):
  """The check `python -m tinynet_jax.main` runs on `config` (a `job` config) before anything is written."""
  from tinynet_jax.inference.evaluate import check_eval_config
  from tinynet_jax.search.runner import check_sweep_config
  from tinynet_jax.train.config import check_config
  {"train": lambda: check_config(config, 1, 1), "sweep": lambda: check_sweep_config(config, 1, 1),
   "eval": lambda: check_eval_config(config)}[job or config.job]()


BAD_ARGUMENTS = [  # (config, argument, needle): refused by get_config or by the check of what it built
    ("train", "modle=tinynet_a", "unknown config argument 'modle'"), ("train", "recipe=fast", "recipe"),
    ("train", "runlocal=maybe", "not a boolean"), ("imagenet", "model=tinynet_z", "tinynet_z"),
    ("train", "r=0", "r must be a finite number > 0, got 0.0"), ("train", "d=-1", "d must be a finite number > 0"),
    ("train", "w=nan", "w must be a finite number > 0, got nan"), ("train", "r=abc", "r='abc' is not a number"),
    ("train", "model=tinynet_a,r=0.5", "give either model='tinynet_a' or r/d/w (r=0.5, d=1, w=1), not both"),
    ("train", "rules=efficientnet", "rules='efficientnet' applies to r/d/w"),
    ("train", "r=0.5,rules=resnet", "rules must be one of tinynet, efficientnet, got 'resnet'"),
    ("train", "dataset=", "dataset must be a non-empty string, got ''"),
    ("train", "model", "config argument model needs a value"),
    ("train", "runlocal,runlocal", "config argument runlocal is given twice"),
    ("imagenet", "dataset=", "dataset must be a non-empty string"),
    ("sweep", "demo,per_level=0", "sweep.per_level must be a positive integer, got 0"),
    ("sweep", "per_level=-2", "sweep.per_level must be a positive integer, got -2"),
    ("sweep", "demo,per_level=1.5", "per_level='1.5' is not an integer"),
    ("sweep", "demo,index=-5", "index must be an integer >= 0, got -5"),
    ("sweep", "demo,index", "config argument index needs a value"),
    ("sweep", "demo,dataset=", "train.dataset must be a non-empty string, got ''"),
    ("sweep", "demo,seed=-1", "sweep.seed must be an integer in [0, 2147483647], got -1"),
    ("sweep", "demo,proxy", "choose one of demo, proxy"),
    ("eval", "", "checkpoint must be a model checkpoint or a training workdir (a path), got ''"),
    ("eval", "checkpoint=x,batch_size=0", "batch_size must be a positive integer, got 0"),
    ("eval", "checkpoint=x,crop_pct=0", "crop_pct must be in (0, 1], got 0.0"),
    ("eval", "checkpoint=x,crop_pct=1.5", "crop_pct must be in (0, 1], got 1.5"),
    ("eval", "checkpoint=x,dataset=", "dataset must be a non-empty string"),
    ("eval", "checkpoint=x,ema=2", "not a boolean"),
]


@pytest.mark.parametrize("name, arg, needle", BAD_ARGUMENTS, ids=[f"{n}:{a}" for n, a, _ in BAD_ARGUMENTS])
def test_bad_config_arguments(name, arg, needle):
  from tinynet_jax.errors import TinynetError
  with pytest.raises(TinynetError) as info:
    check(load(name).get_config(arg))
  assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


# ---- every field's rule, cheaply: check_config on configs with one bad field (no training, no compile) ----------

NAN, INF = float("nan"), float("inf")
# Zero, negative, non-finite, out-of-range and wrong-typed values of each field (a config file can set any type;
# True is a Python int and must not pass for one). Each is refused with a line naming the field and the value.
BAD_TRAIN_FIELDS = {
    "job": ["eval"], "model": [None, 3],
    "r": [0.0, -1.0, NAN, INF, True, "0.5"], "d": [0.0, NAN], "w": [-0.5, True],
    "rules": ["tiny", None], "base_resolution": [0, -224, 224.0, True, None], "resolution": [0, -1, 1.5, True],
    "dtype": ["fp32"], "depthwise_impl": ["conv"], "fast_compile": [True, "yes"], "sync_bn": [1, "True", None],
    "bn_group_size": [0, -128, True, 128.0, "128"],
    "dataset": ["", " ", None, 5], "data_dir": ["", "None", 3], "data_on_device": [0, None],
    "resident_size": [0, -8, True], "eval_crop_pct": [0.0, 1.5, NAN, True],
    "dataset_options.num_classes": [0, -1, True, 2.5], "dataset_options.num_train": [0],
    "dataset_options.num_eval": [-5], "dataset_options.train_split": ["", "None"],
    "dataset_options.eval_split": [""], "dataset_options.in_memory": [1, "yes"],
    "dataset_options.validation_fraction": [0.0, 1.0, NAN, True], "dataset_options.split_seed": [1.5, True, "0"],
    "dataset_options.skip_corrupt": [1, "yes"],
    "batch_size": [0, -64, 64.0, True, None], "eval_batch_size": [0, True],
    "total_steps": [0, -1, True, 2.5], "num_epochs": [0.0, -1.0, INF, True], "total_examples": [0, -10],
    "warmup_steps": [-1, True, 1.5], "warmup_epochs": [-1.0, NAN], "warmup_examples": [-64], "decay_steps": [0],
    "decay_epochs": [0.0, NAN], "decay_examples": [0],
    "log_every_steps": [0, True], "eval_every_steps": [0, -1, True], "checkpoint_every_steps": [0, None],
    "keep_checkpoints": [0, -1], "best_metric": ["top5", "", None, 1], "seed": [-1, 2 ** 32, True, 1.0, None],
    "recipe": ["fast"], "optimizer": ["adam", None],
    "lr": [0.0, -0.048, NAN, INF, True], "lr_batch_size": [0, -768, 768.5, True],
    "momentum": [-0.1, 1.0, NAN, True], "rms_decay": [1.0, -0.5], "opt_eps": [0.0, -1e-3, INF],
    "weight_decay": [-1e-5, NAN, True], "warmup_lr": [-1e-6, INF], "decay_rate": [0.0, 1.5, NAN, -0.97],
    "label_smoothing": [1.0, -0.1, True], "exclusive_smoothing": [1, None], "ema_decay": [1.0, -0.1, NAN],
    "ema_warmup": ["no"], "flat_optimizer": [1, "no"], "drop_rate": [1.0, -0.2, NAN], "drop_path_rate": [1.0, -0.1],
    "augment.crop_scale": [(0.5,), (0.9, 0.5), (0.0, 1.0), (0.5, 1.5), (0.5, NAN), (0.5, True), 0.5, None],
    "augment.crop_ratio": [(4 / 3, 3 / 4), (0.0, 1.0), (1.0, INF), (1.0,)], "augment.flip": [1, None],
    "augment.color_jitter": [-0.4, NAN, INF, True], "augment.randaugment": ["rand-x9", "m9", 5],
    "augment.random_erasing": [-0.1, 1.5, NAN], "augment.interpolation": ["nearest", None],
}
BAD_EVAL_FIELDS = {
    "job": ["train"], "checkpoint": ["", None], "ema": [1, None], "best": [1, "yes"], "dataset": [""], "data_dir": ["", "None"],
    "dataset_options.num_classes": [0], "dataset_options.num_eval": [-1, True], "dataset_options.eval_split": [""],
    "dataset_options.validation_fraction": [1.0], "dataset_options.split_seed": [0.5],
    "dataset_options.skip_corrupt": ["yes"], "batch_size": [0, -250, True, None], "crop_pct": [0.0, 1.5, NAN],
    "resolution": [0, -1, True],
}


def with_field(config, name, value):
  """`config` with field `name` (dotted) set to `value` of any type, as a config file could build it."""
  import ml_collections
  fields = config.to_dict()
  *path, last = name.split(".")
  node = fields
  for key in path:
    node = node[key]
  node[last] = value
  return ml_collections.ConfigDict(fields)


def cases(table):
  return [(name, value) for name, values in table.items() for value in values]


def assert_refused(config, name, value):
  from tinynet_jax.errors import TinynetError
  with pytest.raises(TinynetError) as info:
    check(with_field(config, name, value), job=config.job)
  message = str(info.value)  # the field's own rule refused it (not a rule between fields)
  assert message.startswith((f"{name} must be ", f"{name}: ")) and repr(value) in message, message
  assert "\n" not in message


@pytest.mark.parametrize("name, value", cases(BAD_TRAIN_FIELDS))
def test_every_training_field_refuses_bad_values(name, value):
  assert_refused(load("train").get_config("dataset=synthetic"), name, value)


@pytest.mark.parametrize("name, value", cases(BAD_EVAL_FIELDS))
def test_every_eval_field_refuses_bad_values(name, value):
  assert_refused(load("eval").get_config("checkpoint=x"), name, value)


def leaves(config, prefix=""):
  """The dotted names of `config`'s fields."""
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from leaves(value, prefix + key + ".")
    else:
      yield prefix + key


def test_every_field_has_a_rule_and_every_config_passes():
  """A field without a rule is refused (nothing reads it), so each field of the configs must have one; and the
  tables accept every config the repo ships."""
  from tinynet_jax.inference.evaluate import EVAL_FIELDS
  from tinynet_jax.search.runner import SWEEP_FIELDS
  from tinynet_jax.train.config import TRAIN_FIELDS, base_config
  assert set(leaves(base_config())) == set(TRAIN_FIELDS)
  assert set(leaves(load("eval").get_config())) == set(EVAL_FIELDS)
  sweep = load("sweep").get_config()
  assert set(leaves(sweep)) == set(SWEEP_FIELDS) | {f"train.{k}" for k in TRAIN_FIELDS}
  for name, arg in CASES + [("sweep", None), ("sweep", "demo"), ("sweep", "proxy"), ("eval", "checkpoint=x")]:
    check(load(name).get_config(arg))


@pytest.mark.parametrize("fields, needle", [
    (dict(r=0.5), "give either model='tinynet_a' or r/d/w (r=0.5), not both"),
    (dict(model="efficientnet_b0", rules="efficientnet"), "rules='efficientnet' applies to r/d/w"),
    (dict(resident_size=64), "resident_size=64 is the size of device-resident images: set data_on_device=True"),
    ({"mixup": 0.2}, "unknown config field mixup: nothing reads it"),
    ({"augment.auto_augment": "v0"}, "unknown config field augment.auto_augment"),
])
def test_fields_that_would_be_dropped_are_refused(fields, needle):
  """A value that the trainer would not read (a model beside r/d/w, rules for a zoo model, a resident size
  without resident data, a field nothing reads) is an error, not silently dropped."""
  config = load("train").get_config()
  for name, value in fields.items():
    config = with_field(config, name, value)
  with pytest.raises(ConfigError) as info:
    check(config)
  assert needle in str(info.value)


@pytest.mark.parametrize("arg, planned", [(None, 5 * 20 + 5), ("demo", 3 * 2), ("demo,per_level=3,seed=2", 9),
                                          ("proxy", 3 * 6 + 10 + 4), ("demo,dataset=digits", 6)])
def test_sweep_configs_build_and_plan(arg, planned):
  from tinynet_jax.search.runner import make_plan, train_config
  config = load("sweep").get_config(arg)
  config.lock()
  plan = make_plan(config)
  assert len(plan.models) == planned
  spec = model_spec_from_config(train_config(config, plan.models[0]))
  assert spec.resolution == int(config.train.base_resolution * plan.models[0].r)


# The recipe's arithmetic, written out: base LR lr * batch / lr_batch_size; warm-up from 1e-6, linear per epoch;
# then x decay_rate every decay_epochs (per-epoch steps). steps_per_epoch = num_train // batch.
def _recipe_lr(step, *, spe, lr, warmup, every, rate):
  epoch = step // spe
  return 1e-6 + epoch * (lr - 1e-6) / warmup if epoch < warmup else lr * rate ** (epoch // every)


def _old_schedule(step, *, steps_per_epoch, base_lr, warmup_epochs, warmup_lr, decay_epochs, decay_rate):
  """optim.step_decay_schedule before durations had units (commit 9138beb), verbatim: float32 bit for bit."""
  import jax.numpy as jnp
  epoch = jnp.floor_divide(step, steps_per_epoch).astype(jnp.float32)
  warm = warmup_lr + epoch * (base_lr - warmup_lr) / max(warmup_epochs, 1e-12)
  decayed = base_lr * decay_rate ** jnp.floor(epoch / decay_epochs)
  return jnp.where(epoch < warmup_epochs, warm, decayed)


SCHEDULES = [  # config, num_train, (steps_per_epoch, total_steps), expected LR at steps
    (("train", None), 1_281_167, (1251, 450 * 1251), {
        0: 1e-6, 1250: 1e-6, 1251: 1e-6 + (0.048 - 1e-6) / 3, 2 * 1251: 1e-6 + 2 * (0.048 - 1e-6) / 3,
        3 * 1251: 0.048 * 0.97, 5 * 1251 - 1: 0.048 * 0.97, 5 * 1251: 0.048 * 0.97 ** 2,
        8 * 1251: 0.048 * 0.97 ** 3, 450 * 1251 - 1: 0.048 * 0.97 ** 187}),
    (("train", "model=tinynet_e,dataset=digits,runlocal"), 1437, (22, 264), {
        0: 1e-6, 21: 1e-6, 22: 0.003 * 0.85, 43: 0.003 * 0.85, 44: 0.003 * 0.85 ** 2, 263: 0.003 * 0.85 ** 11}),
    (("sweep", None), 126_689, (247, 7410), {0: 1e-6, 246: 1e-6, 247: 0.024 * 0.9, 494: 0.024 * 0.9 ** 2,
                                             7409: 0.024 * 0.9 ** 29}),
]


@pytest.mark.parametrize("which, num_train, lengths, expected", SCHEDULES, ids=[str(s[0]) for s in SCHEDULES])
def test_existing_configs_keep_their_lr_schedule(which, num_train, lengths, expected):
  from tinynet_jax.train.config import schedule_lengths
  from tinynet_jax.train.optim import make_optimizer
  config = load(which[0]).get_config(which[1])
  config = config.train if which[0] == "sweep" else config
  resolved = schedule_lengths(config, num_train)
  assert (resolved.steps_per_epoch, resolved.total_steps) == lengths
  _, schedule = make_optimizer(config, resolved)
  for step, value in expected.items():
    assert float(schedule(step)) == pytest.approx(value, rel=1e-5), step  # float32 powers: 0.97 ** 187
  spe = lengths[0]  # the closed form agrees at every step of the first few epochs too, the old code exactly
  lr = config.lr * config.batch_size / config.lr_batch_size
  for step in [*range(0, 6 * spe, max(1, spe // 7)), *expected]:
    want = _recipe_lr(step, spe=spe, lr=lr, warmup=config.warmup_epochs, every=config.decay_epochs,
                      rate=config.decay_rate)
    assert float(schedule(step)) == pytest.approx(want, rel=1e-5), step
    old = _old_schedule(step, steps_per_epoch=spe, base_lr=lr, warmup_epochs=config.warmup_epochs,
                        warmup_lr=config.warmup_lr, decay_epochs=config.decay_epochs, decay_rate=config.decay_rate)
    assert float(schedule(step)) == float(old), step


def _short(**fields):
  from tinynet_jax.train.config import base_config
  config = base_config()
  config.batch_size = 64
  config.update(fields)
  return config


def test_durations_in_steps_and_examples():
  from tinynet_jax.train.config import schedule_lengths, set_duration
  from tinynet_jax.train.optim import make_optimizer
  lr = 0.048 * 64 / 1024
  config = _short(num_epochs=10.0, decay_epochs=1.0, decay_rate=0.5)
  set_duration(config, "warmup", steps=10)  # a warm-up of 10 steps in a 22-step epoch: a per-step ramp
  assert (config.warmup_steps, config.warmup_epochs, config.warmup_examples) == (10, None, None)
  lengths = schedule_lengths(config, num_train=1437)
  assert lengths.warmup.steps == 10 and lengths.decay.steps == 22 and lengths.total_steps == 220
  _, schedule = make_optimizer(config, lengths)
  for step in (0, 1, 5, 9):
    assert float(schedule(step)) == pytest.approx(1e-6 + step * (lr - 1e-6) / 10, rel=1e-6)
  assert float(schedule(10)) == float(schedule(21)) == pytest.approx(lr, rel=1e-6)
  assert float(schedule(22)) == pytest.approx(lr / 2, rel=1e-6)
  # Examples are counted in steps of the global batch: 640 examples = 10 steps of 64, the same schedule.
  set_duration(config, "warmup", examples=640)
  same = make_optimizer(config, schedule_lengths(config, num_train=1437))[1]
  assert [float(same(s)) for s in range(30)] == [float(schedule(s)) for s in range(30)]
  set_duration(config, "decay", steps=5)
  set_duration(config, "total", examples=6400)
  lengths = schedule_lengths(config, num_train=1437)
  assert lengths.total_steps == 100 and lengths.decay == type(lengths.decay)(5, 1) and config.num_epochs is None
  config.total_steps = 7  # overrides the total's other unit, as every `--config.total_steps=N` does
  assert schedule_lengths(config, num_train=1437).total_steps == 7


@pytest.mark.parametrize("fields, needle", [
    (dict(warmup_steps=10), "warmup duration is given twice (warmup_steps=10, warmup_epochs=3.0)"),
    (dict(decay_epochs=None, decay_steps=None), "decay duration is not set"),
    (dict(num_epochs=None), "total duration is not set"),
    (dict(total_examples=10_000), "total duration is given twice"),
    (dict(warmup_epochs=-1.0), "warmup_epochs must be a finite number >= 0, got -1.0"),
    (dict(decay_epochs=0.0), "decay_epochs must be a finite number > 0"),
    (dict(decay_epochs=float("nan")), "decay_epochs must be a finite number > 0, got nan"),
    (dict(num_epochs=float("inf")), "num_epochs must be a finite number > 0, got inf"),
    (dict(warmup_epochs=None, warmup_examples=-64), "warmup_examples must be a finite number >= 0"),
    (dict(total_steps=0), "total_steps must be a positive integer"),
])
def test_bad_durations_are_one_line_errors(fields, needle):
  from tinynet_jax.train.config import schedule_lengths
  with pytest.raises(ConfigError) as info:
    schedule_lengths(_short(**fields), num_train=1437)
  assert needle in str(info.value) and "\n" not in str(info.value)



def test_set_duration_takes_one_unit():
  from tinynet_jax.train.config import set_duration
  with pytest.raises(ConfigError, match="exactly one of steps, epochs, examples"):
    set_duration(_short(), "warmup", steps=1, epochs=1.0)
  with pytest.raises(ConfigError, match="unknown duration 'cooldown'"):
    set_duration(_short(), "cooldown", steps=1)


def test_short_schedule_preset_is_the_configs_short_runs():
  from tinynet_jax.train.config import apply_short_schedule, base_config
  runlocal = load("train").get_config("runlocal")
  preset = base_config()
  preset.model = runlocal.model
  apply_short_schedule(preset, batch_size=64, num_epochs=12.0, decay_rate=0.85, ema_decay=0.998,
                       log_every_steps=20, checkpoint_every_steps=100)
  assert preset.to_dict() == runlocal.to_dict()
  demo = load("sweep").get_config("demo").train
  assert (demo.total_steps, demo.num_epochs, demo.warmup_steps, demo.warmup_epochs, demo.decay_epochs,
          demo.decay_steps, demo.ema_warmup) == (150, 450.0, 10, None, None, 15, True)  # all in steps
  with pytest.raises(ConfigError, match="exactly one of num_epochs, total_steps"):
    apply_short_schedule(preset, batch_size=64, num_epochs=1.0, total_steps=5, decay_rate=0.9, ema_decay=0.9,
                         log_every_steps=1, checkpoint_every_steps=1)


@pytest.mark.parametrize("name, arg, job", [("train", None, "train"), ("imagenet", "model=tinynet_c", "train"),
                                            ("sweep", None, "sweep"), ("sweep", "demo", "sweep"),
                                            ("eval", "checkpoint=x", "eval")])
def test_every_config_names_its_job(name, arg, job):
  """python -m tinynet_jax.main runs what `config.job` says, not what the config's keys suggest."""
  config = load(name).get_config(arg)
  assert config.job == job
  if job == "sweep":
    assert config.train.job == "train"  # each sweep model is a training job


def test_main_refuses_an_unknown_job(tmp_path):
  from tinynet_jax.tools.main import run_job
  config = load("train").get_config("dataset=synthetic")
  config.job = "serve"
  with pytest.raises(ConfigError, match="config.job must be train, sweep or eval, got 'serve'"):
    run_job(config, str(tmp_path))
  assert not any(tmp_path.iterdir())  # nothing written


def test_the_demo_warms_up_per_step_then_decays_every_15_steps_and_the_proxy_per_epoch():
  """digit_mosaic's 5,752 images at batch 64: 89 steps an epoch. The demo: 10 warm-up steps, then x0.8 every 15
  steps, so its LR ends at 0.8^9 of the peak (its models converge: raw and EMA agree); the proxy study, run with
  the recipe's per-epoch decay, keeps it (x0.8 at step 89)."""
  from tinynet_jax.train.config import schedule_lengths
  from tinynet_jax.train.optim import make_optimizer
  lr = 0.048 * 64 / 1024
  demo = load("sweep").get_config("demo").train
  lengths = schedule_lengths(demo, 5752)
  assert (lengths.steps_per_epoch, lengths.total_steps, lengths.warmup.steps) == (89, 150, 10)
  _, schedule = make_optimizer(demo, lengths)
  assert float(schedule(0)) < float(schedule(5)) < lr  # ramps step by step, not once per epoch
  for step, value in {10: lr, 14: lr, 15: lr * 0.8, 88: lr * 0.8 ** 5, 149: lr * 0.8 ** 9}.items():
    assert float(schedule(step)) == pytest.approx(value, rel=1e-5), step
  proxy = load("sweep").get_config("proxy").train
  _, schedule = make_optimizer(proxy, schedule_lengths(proxy, 5752))
  for step, value in {10: lr, 88: lr, 89: lr * 0.8, 199: lr * 0.8 ** 2}.items():
    assert float(schedule(step)) == pytest.approx(value, rel=1e-5), step


@pytest.mark.parametrize("backend, name, expected", [("gpu", "auto", "bfloat16"), ("tpu", "auto", "bfloat16"),
                                                     ("cpu", "auto", "float32"), ("gpu", "float32", "float32")])
def test_bf16_is_the_accelerator_default_and_float32_turns_it_off(backend, name, expected, monkeypatch):
  """README: dtype=auto is bfloat16 on GPU/TPU (a speed deviation from the fp32 official trainer); float32 off."""
  import jax
  import jax.numpy as jnp
  from tinynet_jax.train.engine import compute_dtype
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  assert jnp.dtype(compute_dtype(name)).name == expected


@pytest.mark.parametrize("batch_size, devices, group", [
    (1024, 1, 128), (1024, 8, 128), (1024, 32, 128), (1024, 64, 128), (256, 8, 64), (1024, 8, 1024)])
def test_bn_group_sizes_that_tile_the_global_batch_are_accepted(batch_size, devices, group):
  """Groups within a device's batch (1 GPU at 1024: 8 groups of 128), one per device (8 x 128), or whole groups
  of consecutive devices (32 devices x 32: 4 devices a group). The eval batch is not grouped."""
  from tinynet_jax.train.config import check_config
  check_config(_short(batch_size=batch_size, bn_group_size=group, eval_batch_size=devices), 1, devices)


@pytest.mark.parametrize("fields, devices, needle", [
    (dict(bn_group_size=128, sync_bn=True), 8, "bn_group_size=128 conflicts with sync_bn=True"),
    (dict(bn_group_size=96), 8, "bn_group_size=96 must divide the per-device batch 128 (batch_size=1024 over 8 "
                                "devices) or be a multiple of it spanning a number of devices that divides 8"),
    (dict(bn_group_size=384), 8, "bn_group_size=384 must divide the per-device batch 128"),  # 3 devices of 8
    (dict(bn_group_size=2048), 8, "bn_group_size=2048 must divide the per-device batch 128"),  # > global batch
    (dict(bn_group_size=200), 1, "bn_group_size=200 must divide the per-device batch 1024"),
])
def test_bn_group_sizes_that_do_not_tile_the_batch_are_one_line_errors(fields, devices, needle):
  """Rules between fields (the value's own rule is in BAD_TRAIN_FIELDS): the device layout and sync_bn."""
  from tinynet_jax.train.config import check_config
  with pytest.raises(ConfigError) as info:
    check_config(_short(batch_size=1024, **fields), 1, devices)
  assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_bad_bn_group_size_on_the_command_line_exits_2_before_writing(tmp_path, cli):
  code, out, err = cli("tinynet_jax.main", "--config=configs/train.py:dataset=synthetic",
                       f"--workdir={tmp_path / 'run'}", "--config.bn_group_size=3")  # 1024 on 8 fake devices
  assert code == 2 and "bn_group_size=3 must divide the per-device batch 128" in err, err
  assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
