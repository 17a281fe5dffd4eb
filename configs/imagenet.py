r"""The paper's final ImageNet-1k models (Table 3 and the inverse-giant-formula baselines): one config per zoo model.

    python -m tinynet_jax.main --workdir=runs/tinynet_c --config=configs/imagenet.py:model=tinynet_c
    python -m tinynet_jax.main --workdir=runs/tinynet_a_ra --config=configs/imagenet.py:model=tinynet_a,recipe=ra

The models are the zoo's (`tinynet_jax.arch.zoo`: TinyNet A-E, EfficientNet-B0 and B^-1..B^-4, with the paper's
FLOPs and top-1 per model); `python -m tinynet_jax.flops` prints them with their input sizes and counted MACs.
Recipe: the official MindSpore trainer (configs/train.py, recipe=paper, with its per-model drop path): 450
epochs, global batch 1024 (8 GPUs x 128), RMSProp TF-style, lr 0.048, EMA 0.9999; per-replica BN like the
reference (on another layout than 8 devices x 128, --config.bn_group_size=128 keeps its statistics).
Expect about 10 GPU-days per model on 8 V100s at the paper's scale.

Arguments (after ':'): model (a zoo name), recipe (paper | ra), dataset.
"""
from tinynet_jax.arch import ZOO
from tinynet_jax.errors import ConfigError
from tinynet_jax.train.config import apply_recipe, base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, model="tinynet_a", recipe="paper", dataset="imagenet2012")
  if arg.model not in ZOO:
    raise ConfigError(f"configs/imagenet.py has no row {arg.model!r} (rows: {', '.join(ZOO)})")
  config = base_config()
  apply_recipe(config, arg.recipe, model=arg.model)
  config.model = arg.model
  config.dataset = arg.dataset
  return config
