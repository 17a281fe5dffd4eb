r"""The Rubik's cube search (paper §3): random twists at FLOPs levels -> frontier -> GP formula -> figures.

    python -m tinynet_jax.main --config=configs/sweep.py:demo --workdir=runs/demo           # digit_mosaic, CPU, ~5 min
    python -m tinynet_jax.main --config=configs/sweep.py --workdir=runs/in100               # ImageNet-100, 105 models
    python -m tinynet_jax.main --config=configs/sweep.py:index=7 --workdir=runs/in100       # one model (job arrays)
    python -m tinynet_jax.main --config=configs/sweep.py --config.shard=3/8 --workdir=runs/in100   # a slice

Choices where the paper is silent (tinynet.md §1.2-1.3, §4.3), each a field below:
* levels: c = 0.5, 0.25, 0.125, 0.0625 and 0.87 x B0's MACs: TinyNet-A..E sit at c = 0.873, 0.520, 0.258, 0.134,
  0.063, so with the 0.87 level (TinyNet-A's) A..E are all interpolations (a formula's c within its levels' MAC
  spread of the fitted range is not flagged as extrapolated). 0.87 comes last so the other levels keep their
  random streams (the sampler seeds each level by its position). 20 random models each = 100 (the paper's ~100),
  plus one EfficientNet-B^-k baseline per level (ids by level, largest first: B-1 is now the 0.87 level's) = 105.
  Fig. 2 is the 0.5 level (20 models: its regression needs >= 8).
* ranges: r in [0.35, 1.0], d in [0.3, 1.5], w in [0.25, 1.2]: wide enough to contain every TinyNet's (r, d)
  scaled to its level and the B^-k's w; w is solved, draws needing w outside its range are rejected.
* tolerance: a sampled network is within 3% of its level's MACs (the staircase of w allows ~1%).
* recipe per model: the paper's recipe shortened to 30 epochs of ImageNet-100 (1 warmup epoch, LR x0.9 per
  epoch, EMA with warmup); the search's epochs are not published.
* frontier and fit on raw top-1 (EMA lags in short runs); GP input log(c) (see tinynet_jax.search.formula).
  The frontier is an eps-dominance frontier (one level's MACs count as equal cost), and the formula is fitted on
  the best 4 models of each level (fit_on='top_k'): on a simulated sweep of this plan with a planted optimum its
  ±2σ band covers the planted r and d ~85-90% of the time, each level's best alone ~25-60%
  (tests/test_search_simulation.py).
* replicates: extra seeds for the best models of each level, so the report can show the seed noise beside the
  spread across models (contract in tinynet_jax.search.results; scheduling them is the runner's part).
* fig2_models: Fig. 2's study needs several models at one level; the demo draws 3 at its top level, 1 elsewhere.
* the demo fits with fit_on='auto' (the frontier, or the best of each level when the frontier spans fewer than
  three levels): with 2 models a level, top_k would fit every model. The demo and the proxy study train on
  digit_mosaic, where resolution carries information; data_on_device keeps it on the device (set it for
  ImageNet-100 on a GPU/TPU too: uint8 at the base resolution, ~19 GB at 224 px).

Cost (estimates, not measurements: no accelerator was available to this project's sessions; see
docs/performance.md for how to measure). Our imagenet100 has 50,000 training images (500 per class; CMC's
ImageNet-100, which has 126,689, is not what it prepares), so one model = 30 epochs x 50,000 = 1.5M images.
Sweep models are 0.06-0.87 x B0's MACs; at ~10-20k images/s on one H100 (the bf16 Flax TinyNet-A measured
~8.9k, and smaller models run faster) that is ~1.5-3 min a model plus ~1 min compile, and ~4-7 H100-hours for
the 105 models (the paper: 10.4 GPU-days on full ImageNet). A TPU v4-8 slice, fanned out with --config.shard, is
in the same range.
The demo: 12 runs in 4.6-5.0 minutes on a 2-core CPU (README); the proxy study: 48 runs in ~30 minutes (README).

Arguments (after ':'): demo, proxy, index, dataset, per_level, seed. dataset=folder:PATH sweeps an image folder (README,
"Your own data"); with demo it keeps the demo's 32 px base and whole, unflipped images.
"""
import ml_collections
from ml_collections import config_dict

from tinynet_jax.errors import ConfigError
from tinynet_jax.train.config import apply_short_schedule, apply_whole_images, base_config, parse_arg, set_duration


def sweep_fields(**overrides) -> ml_collections.ConfigDict:
  fields = dict(
      levels=(0.5, 0.25, 0.125, 0.0625, 0.87),  # FLOPs levels c relative to B0 (at the same base resolution)
      per_level=20,
      r_range=(0.35, 1.0), d_range=(0.3, 1.5), w_range=(0.25, 1.2),
      tolerance=0.03,
      rules="tinynet",
      seed=0,
      flops_classes=1000,  # MACs counted with ImageNet's head: c is the paper's FLOPs ratio on any dataset
      baselines=True,  # EfficientNet-B^-k with phi solved to each level
      tinynets=False,  # also train TinyNet A-E with the sweep's recipe
      formula_models=True,  # after the fit, train the formula's model at each level (Fig. 6)
      metric="top1",
      fit_on="top_k",  # the best 4 of each level (chosen by simulation); 'frontier' (eps-dominance), 'level_best',
      # 'auto' (the frontier, or top_k when it spans fewer than 3 levels)
      replicates=0,  # extra seeds (train seed + 1, ...) for the best `replicate_top` random models of each level
      replicate_top=1,
      compilation_cache=True,  # DIR/xla_cache: replicates (same program, other seed) and reruns skip compiles
      fig2_level=0.5,  # Fig. 2 (top-1 vs r, d, w at fixed FLOPs) plots this level's random models
      fig2_models=0,  # draw this many at fig2_level when per_level is fewer
  )
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def get_config(arg=None):
  # None unless given: a value given is used or refused (index=-5, per_level=0, dataset= are errors).
  arg = parse_arg(arg, demo=False, proxy=False, index=config_dict.placeholder(int),
                  dataset=config_dict.placeholder(str), per_level=config_dict.placeholder(int),
                  seed=config_dict.placeholder(int))
  if arg.demo and arg.proxy:
    raise ConfigError("choose one of demo, proxy")
  config = ml_collections.ConfigDict()
  config.job = "sweep"  # what python -m tinynet_jax.main runs: train, sweep or eval
  config.index = config_dict.placeholder(int)  # train only this model of the plan
  config.shard = config_dict.placeholder(str)  # 'i/n': train models i, i+n, ...
  train = base_config()
  if arg.demo or arg.proxy:
    train.dataset = "digit_mosaic"  # resolution carries information here (benchmarks/dataset_gate.py)
    train.data_on_device = True  # the train split lives on the device; augmentation runs inside the step
    train.base_resolution = 32
    apply_whole_images(train)
    # 150 steps of 64 (1.7 epochs) with a 10-step warm-up (80 steps with none left models at 40-80% and raw/EMA
    # 25 points apart); the demo's LR also decays in steps (below).
    apply_short_schedule(train, batch_size=64, total_steps=150, decay_rate=0.8, ema_decay=0.99,
                         log_every_steps=50, checkpoint_every_steps=1000)
    set_duration(train, "warmup", steps=10)
    train.drop_rate = 0.0
    train.flat_optimizer = True  # ~12% less compile per new network on XLA:CPU, the same updates (tested)
    train.eval_every_steps = 1000
    ranges = dict(r_range=(0.4, 1.0), d_range=(0.3, 1.0), w_range=(0.25, 1.2), tolerance=0.05, flops_classes=10)
  if arg.demo:
    # The LR x0.8 every 15 steps (0.13x its peak at the end, where the recipe's per-epoch decay left 0.8x): over
    # 3 networks x 2 seeds, seed sigma 13.0 -> 1.9 points and raw/EMA within 2.8 points (was up to 20); the proxy
    # study (docs/proxy_study) was run with the per-epoch decay and keeps it.
    set_duration(train, "decay", steps=15)
    # The embedded default, the whole pipeline in under 5 minutes on a 2-core CPU: 2 random models at each of
    # 3 levels, the best of each level retrained with a second seed (the report's seed sigma), the fit, and the
    # formula's model at each level. No baselines (3 more models) and too few models for Fig. 2's regression.
    config.title = "Rubik's cube sweep (demo: digit_mosaic)"
    config.sweep = sweep_fields(levels=(0.25, 0.125, 0.0625), per_level=2, replicates=1, replicate_top=1,
                                baselines=False, fit_on="auto", fig2_level=0.25, **ranges)
  elif arg.proxy:
    # The CPU study (30-60 min on 2 cores; docs/proxy_study/): enough models per level for the frontier, the
    # GP and Fig. 2 (10 at 0.125) to mean something, the 3 best of each level retrained with a second seed, the
    # B^-k baselines and the formula's models (48 runs), each trained longer than the demo's.
    config.title = "Rubik's cube sweep (proxy study: digit_mosaic)"
    config.sweep = sweep_fields(levels=(0.5, 0.25, 0.125, 0.0625), per_level=6, fig2_level=0.125, fig2_models=10,
                                replicates=1, replicate_top=3, **ranges)
    train.total_steps = 200
  else:
    config.title = "Rubik's cube sweep (ImageNet-100)"
    config.sweep = sweep_fields()
    train.dataset = "imagenet100"  # base_config's paper recipe, cut to 30 epochs
    apply_short_schedule(train, batch_size=512, num_epochs=30.0, decay_rate=0.9, ema_decay=0.999,
                         log_every_steps=50, checkpoint_every_steps=500)
  if arg.dataset is not None:
    train.dataset = arg.dataset
  if arg.per_level is not None:
    config.sweep.per_level = arg.per_level
  if arg.seed is not None:
    config.sweep.seed = arg.seed
  if arg.index is not None:
    config.index = arg.index
  train.model = ""
  config.train = train
  return config
