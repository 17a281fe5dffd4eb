r"""Train one network with the paper's recipe (or timm's RandAugment one).

    python -m tinynet_jax.main --workdir=runs/tinynet_a \
        --config=configs/train.py:model=tinynet_a,dataset=imagenet2012,recipe=paper
    python -m tinynet_jax.main --workdir=runs/x --config=configs/train.py:r=0.7,d=0.9,w=0.6,dataset=imagenet100
    python -m tinynet_jax.main --workdir=/tmp/digits --config=configs/train.py:model=tinynet_e,dataset=digits,runlocal
    python -m tinynet_jax.main --workdir=runs/mine --config=configs/train.py:model=tinynet_e,dataset=folder:/data/pets

Arguments (after ':'): model (zoo name) or r/d/w [rules], dataset (a name, or folder:PATH: README, "Your own
data"), recipe (paper | ra), runlocal (a short run with small batches for a laptop). Any field can then be overridden with --config.field=value.

Recipes (tinynet.md §4): `paper` = the official MindSpore trainer (RMSProp TF-style, lr 0.048 at a global
batch of 1024, 3 warmup epochs, x0.97 every 2.4 epochs, 450 epochs, wd 1e-5, smoothing 0.1, EMA 0.9999, dropout 0.2,
drop path 0 / 0.1 for TinyNet-B); `ra` = timm's rand-m9-mstd0.5 + random erasing 0.2 + drop path 0.2
("TinyNet-A + RA 77.7%"), at timm's lr 0.048 per global batch 768 (2 x 384). Both scale the LR
linearly to --config.batch_size. Expected ImageNet top-1 (EMA, 450 epochs): the paper's, as the zoo records them
(`python -m tinynet_jax.flops`).
"""
from ml_collections import config_dict

from tinynet_jax.train.config import apply_recipe, apply_short_schedule, apply_whole_images, base_config, parse_arg


def get_config(arg=None):
  # model, r/d/w and rules are None unless given, so that a value given is used (r=0 is an error, not "no r") and
  # a model given with r/d/w, or rules with a zoo model, is refused (train.config.check_config) and not dropped.
  arg = parse_arg(arg, model=config_dict.placeholder(str), r=config_dict.placeholder(float),
                  d=config_dict.placeholder(float), w=config_dict.placeholder(float),
                  rules=config_dict.placeholder(str), dataset="imagenet2012", recipe="paper", runlocal=False)
  knobs = [arg[k] for k in ("r", "d", "w")]
  config = base_config()  # model tinynet_a
  if any(v is not None for v in knobs):
    config.model = ""
    config.r, config.d, config.w = (1.0 if v is None else v for v in knobs)
  if arg.model is not None:
    config.model = arg.model
  if arg.rules is not None:
    config.rules = arg.rules
  apply_recipe(config, arg.recipe, model=config.model)
  config.dataset = arg.dataset
  if arg.dataset == "digits":  # whole, unflipped images (train.config.WHOLE_IMAGES) at a reduced resolution
    apply_whole_images(config)
    config.base_resolution = 64
  if arg.runlocal:
    # Converges: on digits a 0.77M-param net reaches 96% val top-1 in 200 steps (9 epochs) with x0.85 per epoch,
    # where the paper's x0.97 per 2.4 epochs leaves the LR too high and val top-1 noisy.
    apply_short_schedule(config, batch_size=64, num_epochs=12.0, decay_rate=0.85, ema_decay=0.998,
                         log_every_steps=20, checkpoint_every_steps=100)
  return config
