r"""The paper's final ImageNet-1k models (Table 3 and the inverse-giant-formula baselines), one row each.

    python -m tinynet_jax.main --workdir=runs/tinynet_c --config=configs/imagenet.py:model=tinynet_c
    python -m tinynet_jax.main --workdir=runs/tinynet_a_ra --config=configs/imagenet.py:model=tinynet_a,recipe=ra

Recipe: the official MindSpore trainer (configs/train.py, recipe=paper): 450 epochs, global batch 1024
(8 GPUs x 128), RMSProp TF-style, lr 0.048, EMA 0.9999; per-replica BN like the reference. Expect about 10
GPU-days per model on 8 V100s at the paper's scale.
"""
from tinynet_jax.train.config import apply_recipe, base_config, parse_arg

# model               r      d      w      input  paper MFLOPs  paper top-1  drop path (paper recipe)
TABLE = {
    "efficientnet_b0": (1.0, 1.0, 1.0, 224, 387, 76.7, 0.0),
    "tinynet_a": (0.86, 1.2, 1.0, 192, 339, 76.8, 0.0),  # 77.7 with recipe=ra (the released checkpoint)
    "tinynet_b": (0.84, 1.1, 0.75, 188, 202, 75.0, 0.1),
    "tinynet_c": (0.825, 0.85, 0.54, 184, 100, 71.2, 0.0),
    "tinynet_d": (0.68, 0.695, 0.54, 152, 52, 67.0, 0.0),
    "tinynet_e": (0.475, 0.6, 0.51, 106, 24, 59.9, 0.0),
    # Inverse giant formula (d=1.2^phi, w=1.1^phi, r=1.15^phi; phi in the zoo), MACs matched to TinyNet-B..E.
    "efficientnet_b-1": (None, None, None, 177, None, None, 0.0),
    "efficientnet_b-2": (None, None, None, 145, None, None, 0.0),
    "efficientnet_b-3": (None, None, None, 128, None, None, 0.0),
    "efficientnet_b-4": (None, None, None, 96, 24, 56.7, 0.0),
}


def get_config(arg=None):
  arg = parse_arg(arg, model="tinynet_a", recipe="paper", dataset="imagenet2012")
  if arg.model not in TABLE:
    from tinynet_jax.errors import ConfigError
    raise ConfigError(f"configs/imagenet.py has no row {arg.model!r} (rows: {', '.join(TABLE)})")
  config = base_config()
  apply_recipe(config, arg.recipe)
  config.model = arg.model
  config.dataset = arg.dataset
  if arg.recipe == "paper":
    config.drop_path_rate = TABLE[arg.model][6]
  return config
