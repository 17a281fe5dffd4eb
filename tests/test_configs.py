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
  assert (paper.optimizer, paper.lr_per_1024, paper.opt_eps, paper.weight_decay) == ("rmsprop_tf", 0.048, 1e-3, 1e-5)
  assert (paper.warmup_epochs, paper.decay_epochs, paper.decay_rate, paper.num_epochs) == (3, 2.4, 0.97, 450)
  assert (paper.ema_decay, paper.drop_rate, paper.drop_path_rate, paper.label_smoothing) == (0.9999, 0.2, 0.1, 0.1)
  assert load("train").get_config("model=tinynet_c").drop_path_rate == 0.0
  ra = load("train").get_config("recipe=ra")
  assert (ra.augment.randaugment, ra.augment.random_erasing, ra.drop_path_rate) == ("rand-m9-mstd0.5", 0.2, 0.2)


def test_imagenet_table_matches_the_zoo():
  table = load("imagenet").TABLE
  assert set(table) == set(ZOO)
  for name, (r, d, w, resolution, mflops, top1, _) in table.items():
    spec, entry = model_spec(name), ZOO[name]
    assert spec.resolution == resolution
    if r is not None:
      assert (r, d, w) == (entry.r, entry.d, entry.w)
    assert (mflops, top1) == (entry.paper_mflops, entry.paper_top1)


@pytest.mark.parametrize("name, arg", [("train", "modle=tinynet_a"), ("train", "recipe=fast"),
                                       ("train", "runlocal=maybe"), ("imagenet", "model=tinynet_z")])
def test_bad_config_arguments(name, arg):
  with pytest.raises(ConfigError):
    load(name).get_config(arg)


@pytest.mark.parametrize("arg, planned", [(None, 100 + 4), ("demo", 3 + 1 + 1 + 3),
                                          ("demo,per_level=3,seed=2", 9 + 3), ("demo,per_level=4", 12 + 3)])
def test_sweep_configs_build_and_plan(arg, planned):
  from tinynet_jax.search.runner import make_plan, train_config
  config = load("sweep").get_config(arg)
  config.lock()
  plan = make_plan(config)
  assert len(plan.models) == planned
  spec = model_spec_from_config(train_config(config, plan.models[0]))
  assert spec.resolution == int(config.train.base_resolution * plan.models[0].r)
