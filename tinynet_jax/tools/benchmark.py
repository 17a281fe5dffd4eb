"""``python -m tinynet_jax.benchmark``: train-step and eval throughput, compile time and peak memory, on
synthetic data (no TensorFlow); with ``--compare timm``, timm's same networks measured in the same run.

    python -m tinynet_jax.benchmark --models tinynet_a,tinynet_e --batch 256 --json bench.json
    python -m tinynet_jax.benchmark --models all --compare timm --json bench.json   # docs/performance.md

Our train step is the training engine's (`tinynet_jax.train.steps.train_step` under `jax.shard_map` over every
local device): forward, backward, the paper's RMSProp-TF with weight decay, EMA of params and BN statistics, BN
update, label smoothing. ``train_resident`` is the same step fed from a device-resident uint8 dataset with the
augmentation (random-resized crop, flip) inside the step (`data_on_device`, the sweeps' input path).
timm's step is the same work in PyTorch: channels_last, autocast to the compute dtype, timm's RMSpropTF, its
label-smoothing loss and ModelEmaV3, eager or under `torch.compile`. Times are wall clock after warm-up,
synchronised on the device.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from typing import Any, Callable, Sequence

from tinynet_jax.tools.cli import ArgumentParser, positive_int, run
from tinynet_jax.errors import ConfigError
from tinynet_jax.files import atomic_write_json
from tinynet_jax.arch import ModelSpec, model_spec
from tinynet_jax.arch.zoo import ZOO

PROG = "python -m tinynet_jax.benchmark"
MODES = ("train", "eval", "train_resident")
TIMM_MODES = ("eager", "compile")
DTYPES = ("auto", "bfloat16", "float32")
NUM_CLASSES = 1000


def _timed(step: Callable[[], Any], sync: Callable[[Any], None], steps: int, warmup: int) -> float:
  """Seconds per call of `step` after `warmup` calls, synchronised with `sync` on the last output."""
  out = None
  for _ in range(warmup):
    out = step()
  sync(out)
  start = time.perf_counter()
  for _ in range(steps):
    out = step()
  sync(out)
  return (time.perf_counter() - start) / steps


def _peak_memory() -> int | None:
  import jax
  stats = jax.local_devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def ours(spec: ModelSpec, mode: str, *, batch: int, dtype: str, steps: int, warmup: int) -> dict[str, Any]:
  """Our step's images/s, compile seconds and peak device memory."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from tinynet_jax import data
  from tinynet_jax.models import create_model, init_variables
  from tinynet_jax.train import parallel, steps as train_steps
  from tinynet_jax.train.config import base_config, schedule_lengths
  from tinynet_jax.train.loop import compute_dtype
  from tinynet_jax.train.optim import make_optimizer
  from tinynet_jax.train.state import create_state

  config = base_config()
  config.batch_size = batch
  res = spec.resolution
  model = create_model(spec, NUM_CLASSES, dtype=compute_dtype(dtype), drop_rate=config.drop_rate)
  tx, _ = make_optimizer(config, schedule_lengths(config, num_train=1000 * batch))
  mesh = parallel.make_mesh()
  options = parallel.compiler_options(config.fast_compile)
  dummy = jnp.zeros((1, res, res, 3), jnp.float32)
  init = jax.jit(lambda key: create_state(init_variables(create_model(spec, NUM_CLASSES), key, dummy, train=False),
                                          tx), out_shardings=parallel.replicated(mesh), compiler_options=options)
  state = init(jax.random.key(0))
  rng = np.random.default_rng(0)
  labels = rng.integers(0, NUM_CLASSES, batch).astype(np.int32)
  common = dict(model=model, tx=tx, rng=jax.random.key(1), num_classes=NUM_CLASSES,
                label_smoothing=config.label_smoothing, exclusive_smoothing=config.exclusive_smoothing,
                ema_decay=config.ema_decay)
  if mode == "train_resident":
    stored = max(4 * batch, 1024)
    resident = parallel.replicate_host_arrays(mesh, {
        "image": rng.integers(0, 256, (stored, res, res, 3), dtype=np.uint8),
        "label": rng.integers(0, NUM_CLASSES, stored).astype(np.int32)})
    augment = data.Augment(color_jitter=0.0)  # crop + flip: the sweep recipe's on-device part
    fn = parallel.shard_step(train_steps.resident_train_step, mesh, donate_state=True, options=options,
                             replicated_args=1, augment=augment, resolution=res,
                             augment_key=jax.random.key(2), **common)
    rows = data.resident_index_iterator(stored, global_batch_size=batch, seed=0)
    batches = [parallel.global_batch(mesh, next(rows)) for _ in range(4)]
    args = lambda i: (batches[i % 4], resident)  # noqa: E731
  else:
    images = rng.standard_normal((batch, res, res, 3), dtype=np.float32)
    if mode == "train":
      fn = parallel.shard_step(train_steps.train_step, mesh, donate_state=True, options=options, **common)
      one = parallel.global_batch(mesh, {"image": images, "label": labels})
    else:
      fn = parallel.shard_step(train_steps.eval_step, mesh, donate_state=False, options=options, model=model,
                               num_classes=NUM_CLASSES)
      one = parallel.global_batch(mesh, {"image": images, "label": labels, "mask": np.ones(batch, np.float32)})
    args = lambda i: (one,)  # noqa: E731

  start = time.perf_counter()
  compiled = fn.lower(state, *args(0)).compile()
  compile_seconds = time.perf_counter() - start
  holder = {"state": state, "i": 0}

  def step():
    holder["i"] += 1
    if mode == "eval":
      return compiled(holder["state"], *args(holder["i"]))
    holder["state"], metrics = compiled(holder["state"], *args(holder["i"]))
    return metrics

  seconds = _timed(step, jax.block_until_ready, steps, warmup)
  return {"images_per_second": batch / seconds, "step_ms": 1e3 * seconds, "compile_seconds": compile_seconds,
          "peak_memory_bytes": _peak_memory()}


def timm_model(spec: ModelSpec, num_classes: int = NUM_CLASSES):
  """timm's own generator at the spec's (d, w) and rules, randomly initialised (nothing is downloaded)."""
  from timm.models.efficientnet import _gen_efficientnet, _gen_tinynet
  if spec.rules == "tinynet":
    return _gen_tinynet("tinynet_a", spec.w, spec.d, pretrained=False, num_classes=num_classes)
  return _gen_efficientnet("efficientnet_b0", spec.w, spec.d, pretrained=False, num_classes=num_classes)


def theirs(spec: ModelSpec, mode: str, timm_mode: str, *, batch: int, dtype: str, steps: int,
           warmup: int) -> dict[str, Any]:
  """timm's images/s for the same network, batch and dtype ('compile' time = the first calls' extra time)."""
  import torch
  from timm.loss import LabelSmoothingCrossEntropy
  from timm.optim import RMSpropTF
  from timm.utils import ModelEmaV3
  from tinynet_jax.train.config import PAPER

  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  amp_dtype = {"bfloat16": torch.bfloat16, "float32": None}[
      dtype if dtype != "auto" else ("bfloat16" if device.type == "cuda" else "float32")]
  torch.manual_seed(0)
  model = timm_model(spec).to(device).to(memory_format=torch.channels_last)
  res = spec.resolution
  x = torch.randn(batch, 3, res, res, device=device).to(memory_format=torch.channels_last)
  y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
  forward = torch.compile(model) if timm_mode == "compile" else model
  autocast = lambda: torch.autocast(device.type, dtype=amp_dtype or torch.float32,  # noqa: E731
                                    enabled=amp_dtype is not None)
  if mode == "train":
    model.train()
    optimizer = RMSpropTF(model.parameters(), lr=PAPER["lr_per_1024"] * batch / 1024, alpha=PAPER["rms_decay"],
                          eps=PAPER["opt_eps"], momentum=PAPER["momentum"], weight_decay=PAPER["weight_decay"])
    loss_fn = LabelSmoothingCrossEntropy(PAPER["label_smoothing"])
    ema = ModelEmaV3(model, decay=PAPER["ema_decay"])

    def step():
      with autocast():
        loss = loss_fn(forward(x), y)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      ema.update(model)
      return loss
  else:
    model.eval()

    def step():
      with torch.no_grad(), autocast():
        return forward(x)

  sync = (lambda _: torch.cuda.synchronize()) if device.type == "cuda" else (lambda _: None)
  start = time.perf_counter()
  step()
  sync(None)
  first = time.perf_counter() - start
  seconds = _timed(step, sync, steps, warmup)
  peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
  return {"images_per_second": batch / seconds, "step_ms": 1e3 * seconds,
          "compile_seconds": max(first - seconds, 0.0) if timm_mode == "compile" else None,
          "peak_memory_bytes": peak}


def input_pipeline(resolution: int) -> list[dict[str, Any]]:
  """tf.data train-transform images/s with 1 thread and with one per host core, for both recipes."""
  import os
  from tinynet_jax.data.tfdata import throughput
  jpegs = throughput.synthetic_jpegs()
  rows = []
  for recipe in throughput.RECIPES:
    for threads in sorted({1, os.cpu_count() or 1}):
      rate = throughput.images_per_second(recipe, threads=threads, resolution=resolution, jpegs=jpegs)
      rows.append({"recipe": recipe, "threads": threads, "resolution": resolution, "images_per_second": rate,
                   "images_per_second_per_core": rate / threads})
  return rows


def _models(text: str) -> list[str]:
  names = list(ZOO) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in ZOO]
  if unknown or not names:
    raise argparse.ArgumentTypeError(f"unknown model(s) {', '.join(unknown) or text!r} "
                                     f"(known: all, {', '.join(ZOO)})")
  return names


def _choices(allowed: Sequence[str]) -> Callable[[str], list[str]]:
  def parse(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
      raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(allowed)}, got {text!r}")
    return values
  return parse


def build_parser() -> argparse.ArgumentParser:
  parser = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[-1])
  parser.add_argument("--models", type=_models, default=_models("tinynet_a,tinynet_e"),
                      help="comma list of zoo models, or 'all' (default tinynet_a,tinynet_e)")
  parser.add_argument("--batch", type=positive_int, default=256, help="global batch (default 256)")
  parser.add_argument("--dtype", choices=DTYPES, default="auto",
                      help="compute dtype; auto = bfloat16 on GPU/TPU, float32 on CPU")
  parser.add_argument("--modes", type=_choices(MODES), default=list(MODES), help=f"of {', '.join(MODES)}")
  parser.add_argument("--resolution", type=positive_int, help="input size for every model (default: the model's)")
  parser.add_argument("--steps", type=positive_int, default=50, help="timed steps (default 50)")
  parser.add_argument("--warmup", type=positive_int, default=5, help="untimed steps first (default 5)")
  parser.add_argument("--compare", choices=("timm",), help="also measure timm's models in this run")
  parser.add_argument("--timm-modes", type=_choices(TIMM_MODES), default=list(TIMM_MODES),
                      help="eager, compile or both (default both)")
  parser.add_argument("--input-pipeline", action="store_true",
                      help="also measure the ImageNet tf.data train transform per host core (needs the data extra)")
  parser.add_argument("--json", help="write the rows and ratios here (atomically)")
  return parser


def _environment() -> dict[str, Any]:
  import jax
  env = {"backend": jax.default_backend(), "devices": [str(d.device_kind) for d in jax.devices()],
         "jax": jax.__version__, "python": platform.python_version()}
  try:
    import timm
    import torch
    env.update(torch=torch.__version__, timm=timm.__version__,
               torch_device=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
  except ImportError:
    pass
  return env


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """ours / timm images-per-second for every (model, mode) measured by both ('train_resident' vs timm train)."""
  out = []
  for row in rows:
    if row["impl"] != "tinynet_jax":
      continue
    mode = "train" if row["mode"] == "train_resident" else row["mode"]
    for other in rows:
      if other["model"] == row["model"] and other["impl"] != "tinynet_jax" and other["mode"] == mode:
        out.append({"model": row["model"], "mode": row["mode"], "versus": other["impl"],
                    "ratio": row["images_per_second"] / other["images_per_second"]})
  return out


def _format(rows: Sequence[dict[str, Any]], ratio_rows: Sequence[dict[str, Any]]) -> str:
  lines = [f"{'model':<18}{'impl':<14}{'mode':<16}{'res':>5}{'img/s':>11}{'ms/step':>10}{'compile s':>11}"
           f"{'peak MiB':>10}"]
  for r in rows:
    compile_s = "-" if r["compile_seconds"] is None else f"{r['compile_seconds']:.1f}"
    peak = "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.0f}"
    lines.append(f"{r['model']:<18}{r['impl']:<14}{r['mode']:<16}{r['resolution']:>5}"
                 f"{r['images_per_second']:>11,.0f}{r['step_ms']:>10.2f}{compile_s:>11}{peak:>10}")
  if ratio_rows:
    lines.append("")
    lines.extend(f"{r['model']:<18}{r['mode']:<16} ours / {r['versus']:<14} {r['ratio']:.2f}x" for r in ratio_rows)
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if args.compare == "timm":
    try:
      import timm  # noqa: F401
      import torch  # noqa: F401
    except ImportError as e:
      raise ConfigError(f"--compare timm needs torch and timm importable ({e})") from None
  import jax
  if args.batch % jax.device_count():
    raise ConfigError(f"--batch {args.batch} must divide evenly over {jax.device_count()} devices")
  rows = []
  for name in args.models:
    spec = model_spec(name, resolution=args.resolution)
    base = {"model": name, "resolution": spec.resolution, "batch": args.batch, "dtype": args.dtype}
    for mode in args.modes:
      rows.append({**base, "impl": "tinynet_jax", "mode": mode,
                   **ours(spec, mode, batch=args.batch, dtype=args.dtype, steps=args.steps, warmup=args.warmup)})
      print(_format(rows[-1:], []).splitlines()[-1], file=sys.stderr, flush=True)
    if args.compare == "timm":
      for timm_mode in args.timm_modes:
        for mode in [m for m in args.modes if m != "train_resident"]:
          rows.append({**base, "impl": f"timm_{timm_mode}", "mode": mode,
                       **theirs(spec, mode, timm_mode, batch=args.batch, dtype=args.dtype, steps=args.steps,
                                warmup=args.warmup)})
          print(_format(rows[-1:], []).splitlines()[-1], file=sys.stderr, flush=True)
  ratio_rows = ratios(rows)
  print(_format(rows, ratio_rows))
  pipeline = input_pipeline(args.resolution or 224) if args.input_pipeline else []
  for row in pipeline:
    print(f"tf.data {row['recipe']:<6} {row['threads']} thread(s): {row['images_per_second']:,.0f} img/s "
          f"({row['images_per_second_per_core']:,.0f} per core)")
  if args.json:
    atomic_write_json(args.json, {"environment": _environment(), "rows": rows, "ratios": ratio_rows,
                                  "input_pipeline": pipeline,
                                  "arguments": {k: v for k, v in vars(args).items()}})
    print(f"json: {args.json}")
  return 0


def entry() -> int:
  return run(main, PROG)


if __name__ == "__main__":
  sys.exit(entry())
