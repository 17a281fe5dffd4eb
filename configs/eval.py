r"""Evaluate a checkpoint: timm's eval preprocessing (short side to res / 0.875, bicubic, centre crop).

    python -m tinynet_jax.main --config=configs/eval.py:checkpoint=ckpt/tinynet_a --workdir=runs/eval_a
    python -m tinynet_jax.main --config=configs/eval.py:checkpoint=runs/digits,dataset=digits,ema --workdir=runs/e

The checkpoint is a model checkpoint (``python -m tinynet_jax.convert``) or a training workdir (newest step;
``best`` for its best checkpoint by the run's best_metric, ``ema`` for the EMA weights). The released TinyNets'
top-1 on ImageNet-1k validation under timm's evaluation is the zoo's "released" column
(`python -m tinynet_jax.flops`).

Arguments (after ':'): checkpoint, dataset, ema, best, batch_size, crop_pct.
"""
import ml_collections
from ml_collections import config_dict

from tinynet_jax.train.config import folder_options, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, checkpoint="", dataset="imagenet2012", ema=False, best=False, batch_size=250,
                  crop_pct=0.875)
  config = ml_collections.ConfigDict()
  config.job = "eval"  # what python -m tinynet_jax.main runs: train, sweep or eval
  config.checkpoint = arg.checkpoint
  config.ema = arg.ema
  config.best = arg.best  # a training workdir's best checkpoint instead of its newest
  config.dataset = arg.dataset
  config.data_dir = config_dict.placeholder(str)
  config.dataset_options = ml_collections.ConfigDict(dict(
      num_classes=config_dict.placeholder(int), num_train=config_dict.placeholder(int),
      num_eval=config_dict.placeholder(int), eval_split=config_dict.placeholder(str),
      **folder_options()))  # dataset=folder:PATH: the same split options as training
  config.batch_size = arg.batch_size
  config.crop_pct = arg.crop_pct
  config.resolution = config_dict.placeholder(int)  # default: the checkpoint's
  return config
