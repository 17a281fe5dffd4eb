"""The sweep runner: plan the models, train each (resumably), record results, then fit and report.

    DIR/sweep.json          the plan: every model and the sampler's acceptance rates (written once)
    DIR/models/<id>/        each model's training workdir (checkpoints, metrics, final_metrics.json)
    DIR/results.jsonl       one line per finished model, appended atomically
    DIR/xla_cache/          JAX's persistent compilation cache (`sweep.compilation_cache`)
    DIR/formula.json, DIR/report.md, DIR/fig*.png|svg   the analysis, once every planned model has a result

Rerunning the same command skips finished models and resumes a partial one from its checkpoint. `index` runs
one model and `shard='i/n'` a slice, so a cluster can fan out; the analysis runs in whichever process finds
the sweep complete (or later, with ``python -m tinynet_jax.analyze DIR``).
"""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import jax

from tinynet_jax import data
from tinynet_jax.arch import RULES
from tinynet_jax.costs import count_params
from tinynet_jax.errors import ConfigError, SearchError
from tinynet_jax.files import append_json_line, atomic_write_json
from tinynet_jax.search import analysis, sampler
from tinynet_jax.search.frontier import top_k_per_level
from tinynet_jax.search.results import RESULTS, drop_torn_tail, read_results
from tinynet_jax.search.sampler import SweepModel
from tinynet_jax.train import compile_for, parallel, train_and_evaluate
from tinynet_jax.train.config import (DEFAULT_RULES, Rule, boolean, check_config, check_fields, choice,
                                      dataset_options, integer, interval, optional, pair, positive, positive_int,
                                      seed, text)

PLAN = "sweep.json"
LOOKAHEAD = 2  # runs compiled ahead of the one training, each in its own thread
COMPILATION_CACHE = "xla_cache"  # JAX's persistent compilation cache: replicates and reruns skip compiling


_LEVEL = interval("(0, 4]")  # relative to B0's MACs (`sampler.check_levels`)
# What each field of a sweep config (configs/sweep.py) may hold; its `train` part is a training config
# (`train.config.TRAIN_FIELDS`). Levels and shards are the sampler's checks, with their messages.
SWEEP_FIELDS: dict[str, Rule] = {
    "job": choice("sweep"),
    "title": optional(text),
    "index": optional(integer(0)),  # < the plan's model count: `sampler.select`
    "shard": optional(Rule("'i/n' with 0 <= i < n", lambda v: sampler.parse_shard(v) is not None)),
    "sweep.levels": Rule(f"a non-empty tuple of distinct numbers {_LEVEL.allowed}",
                         lambda v: isinstance(v, (tuple, list)) and all(_LEVEL.accepts(c) for c in v)
                         and bool(sampler.check_levels(v))),
    "sweep.per_level": positive_int,
    "sweep.r_range": pair(positive, strict=True), "sweep.d_range": pair(positive, strict=True),
    "sweep.w_range": pair(positive, strict=True),
    "sweep.tolerance": interval("(0, 1)"),
    "sweep.rules": choice(*RULES),
    "sweep.seed": seed,
    "sweep.flops_classes": positive_int,
    "sweep.baselines": boolean, "sweep.tinynets": boolean, "sweep.formula_models": boolean,
    "sweep.metric": choice(*analysis.METRICS),
    "sweep.fit_on": choice(*analysis.FIT_ON),
    "sweep.replicates": integer(0), "sweep.replicate_top": integer(1),
    "sweep.compilation_cache": boolean,
    "sweep.fig2_level": optional(_LEVEL),  # one of the levels (below); None: the level with the most models
    "sweep.fig2_models": integer(0),
}


def check_sweep_config(config, process_count: int, device_count: int) -> None:
  """A sweep config's fields (`SWEEP_FIELDS`, its train config's `check_config`) and the rules between them."""
  check_fields(config, SWEEP_FIELDS, skip=("train",))
  check_config(config.train, process_count, device_count, prefix="train.")
  # `train_config` sets each model's (r, d, w) and the sweep's rules: a value here would be dropped.
  t = config.train
  for key, unset in (("model", ""), ("r", None), ("d", None), ("w", None), ("rules", DEFAULT_RULES)):
    if t[key] != unset:
      raise ConfigError(f"train.{key}={t[key]!r} is set per model by the sweep: leave it out (the sweep's scaling "
                        "rules are sweep.rules)")
  s = config.sweep
  if s.fig2_level is not None and s.fig2_level not in s.levels:
    raise ConfigError(f"sweep.fig2_level={s.fig2_level:g} must be one of sweep.levels "
                      f"({', '.join(f'{c:g}' for c in s.levels)})")
  if s.fig2_models and s.fig2_level is None:
    raise ConfigError(f"sweep.fig2_models={s.fig2_models} needs sweep.fig2_level, the level to draw them at")


@dataclasses.dataclass(frozen=True)
class Plan:
  models: tuple[SweepModel, ...]
  stats: tuple[sampler.LevelStats, ...]
  b0_macs: int
  base_resolution: int
  flops_classes: int

  def to_dict(self) -> dict[str, Any]:
    return {"models": [m.to_dict() for m in self.models], "b0_macs": self.b0_macs,
            "base_resolution": self.base_resolution, "flops_classes": self.flops_classes,
            "acceptance": [dict(dataclasses.asdict(s), acceptance_rate=s.acceptance_rate) for s in self.stats]}


def make_plan(config) -> Plan:
  """Every model of the sweep, in training order: random models level by level, then baselines, TinyNets."""
  s = config.sweep
  base = config.train.base_resolution
  # Fig. 2's study draws `fig2_models` at its level when that is more than per_level.
  counts = [max(s.per_level, s.fig2_models) if level == s.fig2_level else s.per_level for level in s.levels]
  models, stats = sampler.sample_random(
      s.levels, counts, r_range=s.r_range, d_range=s.d_range, w_range=s.w_range, tolerance=s.tolerance,
      seed=s.seed, base_resolution=base, rules=s.rules, num_classes=s.flops_classes)
  if s.baselines:
    models += sampler.baselines(s.levels, base_resolution=base, num_classes=s.flops_classes)
  if s.tinynets:
    models += sampler.tinynets()
  return Plan(tuple(models), tuple(stats), sampler.reference_macs(base, s.flops_classes), base, s.flops_classes)


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run of the sweep: a model, its seed, and the model it repeats (replicates only)."""
  model: SweepModel
  seed: int
  replicate_of: str | None = None


def train_config(config, model: SweepModel, seed: int | None = None):
  """The training config of one sweep model: the sweep's recipe at the model's (r, d, w), with `seed`."""
  c = copy.deepcopy(config.train)
  with c.unlocked():
    c.model = ""
    c.r, c.d, c.w, c.rules = model.r, model.d, model.w, model.rules
    if seed is not None:
      c.seed = seed
  return c


def result_row(job: Job, plan: Plan, final: dict[str, Any], dataset: str, num_classes: int) -> dict:
  model = job.model
  spec = model.spec(plan.base_resolution)
  macs = sampler.model_macs(model, plan.base_resolution, plan.flops_classes)
  replicate = {"replicate_of": job.replicate_of} if job.replicate_of else {}
  return {**model.to_dict(), "id": job_id(job), "resolution": spec.resolution, "macs": macs, "c": macs / plan.b0_macs,
          "b0_macs": plan.b0_macs, "base_resolution": plan.base_resolution, "flops_classes": plan.flops_classes,
          "params": count_params(spec, num_classes), "dataset": dataset, "steps": final["steps"],
          **{k: final[k] for k in ("top1", "top5", "ema_top1", "ema_top5")},
          "train_seconds": final["wall_seconds"], "seed": job.seed, **replicate}


def replicate_jobs(rows: list[dict[str, Any]], models: tuple[SweepModel, ...], *, replicates: int, top: int,
                   metric: str, seed: int) -> list[Job]:
  """`replicates` more seeds (seed + 1, ...) of the `top` best random models of each level, by `metric` of
  their first run: what the report's seed sigma is measured on (`analysis.seed_noise`)."""
  if not replicates:
    return []
  by_id = {m.id: m for m in models}
  best = top_k_per_level([r for r in rows if r["kind"] == "random" and not r.get("replicate_of")],
                                  metric=metric, k=top)
  return [Job(by_id[row["id"]], seed + i, replicate_of=row["id"]) for row in best
          for i in range(1, replicates + 1)]


def job_id(job: Job) -> str:
  """The result id of a run: the model's id, a replicate's with its seed ('L0.25-003-s2')."""
  return f"{job.model.id}-s{job.seed}" if job.replicate_of else job.model.id


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
  """One line per model on stderr: models done / total, the last result, and the ETA."""

  def __init__(self, total: int, done: int):
    self.total, self.done, self.start, self.trained = total, done, time.time(), 0

  def starting(self, job: Job, resolution: int) -> None:
    model = job.model
    what = f"{model.label}, seed {job.seed}" if job.replicate_of else model.label
    print(f"[sweep {self.done}/{self.total}] training {job_id(job)} ({what}: r={model.r:g} d={model.d:g} "
          f"w={model.w:g}, {resolution} px)", file=sys.stderr, flush=True)

  def finished(self, row: dict[str, Any], remaining: int) -> None:
    self.done += 1
    self.trained += 1
    eta = (time.time() - self.start) / self.trained * remaining
    print(f"[sweep {self.done}/{self.total}] {row['id']}: {row['macs'] / 1e6:.2f}M MACs, top-1 {row['top1']:.1%} "
          f"(EMA {row['ema_top1']:.1%}) in {row['train_seconds']:.0f} s; ETA {_duration(eta)}",
          file=sys.stderr, flush=True)


def _check_plan_file(path: Path, plan: Plan) -> None:
  """A workdir belongs to one sweep: refuse to mix a different plan's models into its results."""
  if not path.exists():
    return
  try:
    saved = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError):
    raise SearchError(f"{path} is unreadable; remove it or use a new --workdir") from None
  if saved.get("models") != [m.to_dict() for m in plan.models]:
    raise SearchError(f"{path.parent} holds a different sweep (other levels, ranges or seed); "
                      "use a new --workdir")


class LookAhead:
  """Compiles runs' programs in threads (`train.compile_for`) ahead of them, so that a run's own compile becomes a
  read from the persistent compilation cache: the compile of a new architecture (~15 s on a 2-core CPU) overlaps
  the training of the one before, and on a GPU host the host compiles while the device trains. Runs are keyed by
  their whole training config; a failure here is left for the run itself to report."""

  def __init__(self, compile_fn: Callable | None, workers: int = LOOKAHEAD):
    self.compile_fn = compile_fn
    self.executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="tinynet-lookahead")
    self.pending: dict[str, concurrent.futures.Future] = {}
    self.lock = threading.Lock()

  @staticmethod
  def _key(train_config) -> str:
    return json.dumps(train_config.to_dict(), sort_keys=True, default=str)

  def start(self, train_config) -> None:
    if self.compile_fn is None:
      return
    with self.lock:
      key = self._key(train_config)
      if key not in self.pending:
        self.pending[key] = self.executor.submit(self._quietly, self.compile_fn, train_config)

  def speculate(self, configs_fn: Callable[[], list]) -> None:
    """Compiles the configs `configs_fn()` will name, computing them in a thread too (the formula models, from a
    fit on the results so far, while replicates train; a wrong guess costs only spare compile time)."""
    if self.compile_fn is not None:
      self.executor.submit(self._quietly, lambda: [self.start(c) for c in configs_fn()])

  def wait(self, train_config) -> None:
    """Before a run trains: a compile of it still under way has a head start, so let it finish."""
    with self.lock:
      future = self.pending.get(self._key(train_config))  # kept: a config is compiled ahead once
    if future is not None:
      future.result()

  @staticmethod
  def _quietly(fn: Callable, *args) -> None:
    try:
      fn(*args)
    except Exception as e:  # noqa: BLE001  (the run itself raises it with its one-line message)
      logging.info("look-ahead compile failed (%s); the run compiles for itself", e)

  def close(self) -> None:
    self.executor.shutdown(wait=False, cancel_futures=True)


def run_sweep(config, workdir: str | Path, *, train_fn: Callable = train_and_evaluate,
              compile_fn: Callable | None = None, speculate: bool | None = None) -> dict[str, Any]:
  """Trains the selected models of the sweep `config` in `workdir`, then analyses it when it is complete.

  `train_fn(train_config, model_workdir) -> final metrics` trains one model, resuming from its workdir; a result
  with ``preempted`` stops the sweep (the tests pass a fake one to check the bookkeeping without training).
  `compile_fn(train_config)` compiles the next model ahead (`LookAhead`); by default `train.compile_for` when
  the real trainer runs with the compilation cache on, else nothing. `speculate`: also compile the formula models
  of the fit before replicates while the replicates train; by default only off CPU.
  """
  # Everything that can be wrong with the request is checked before anything is written.
  check_sweep_config(config, jax.process_count(), jax.device_count())
  if compile_fn is None and train_fn is train_and_evaluate and config.sweep.compilation_cache:
    compile_fn = compile_for
  if speculate is None:
    # On an accelerator the host is idle while the device trains, so a guess costs nothing. On a CPU the guess
    # competes with the replicates' training for the same cores and is wasted whenever a replicate reorders a
    # level (the demo's does: its second seed takes a level's best below the runner-up): its 3 replicates took
    # 58 s with the guess compiling beside them, 21 s without, and the formula models' compile after them 56 s
    # vs 43 s.
    speculate = jax.default_backend() != "cpu"
  s = config.sweep
  plan = make_plan(config)
  selected = sampler.select(plan.models, index=config.index, shard=config.shard)
  info = data.dataset_info(config.train.dataset, config.train.data_dir, **dataset_options(config.train))
  workdir = Path(workdir)
  _check_plan_file(workdir / PLAN, plan)
  primary = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  if primary and not (workdir / PLAN).exists():
    atomic_write_json(workdir / PLAN, plan.to_dict())
  if s.compilation_cache:
    parallel.use_compilation_cache(workdir / COMPILATION_CACHE)
  for stat in plan.stats:
    logging.warning("level %g: %d models from %d draws (acceptance %.0f%%)", stat.level, stat.accepted, stat.draws,
                    100 * stat.acceptance_rate)

  results = workdir / RESULTS
  if primary:
    drop_torn_tail(results)
  done = {row["id"] for row in read_results(results, allow_torn_tail=True)}

  lookahead = LookAhead(compile_fn)

  def train(jobs: list[Job], progress: Progress) -> bool:
    todo = [job for job in jobs if job_id(job) not in done]
    configs = [train_config(config, job.model, job.seed) for job in todo]
    for position, job in enumerate(todo):
      # This run and the next LOOKAHEAD compile in the look-ahead threads while the run before trains; a
      # replicate runs its model's program, which is in the cache already.
      for ahead, ahead_config in zip(todo[position:position + 1 + LOOKAHEAD],
                                     configs[position:position + 1 + LOOKAHEAD]):
        if not ahead.replicate_of:
          lookahead.start(ahead_config)
      lookahead.wait(configs[position])
      if not run(job, configs[position], progress, len(todo) - position - 1):
        return False
    return True

  def run(job: Job, job_config, progress: Progress, remaining: int) -> bool:
    progress.starting(job, job.model.spec(plan.base_resolution).resolution)
    final = train_fn(job_config, workdir / "models" / job_id(job))
    if final.get("preempted"):
      return False
    row = result_row(job, plan, final, config.train.dataset, info.num_classes)
    if primary:
      append_json_line(results, row)
    done.add(row["id"])
    progress.finished(row, remaining)
    return True

  def formula_jobs(rows) -> list[Job]:
    """Fig. 6's "tiny formula" models: the formula fitted on `rows`, at each level."""
    _, _, formula = analysis.fit(rows, metric=s.metric, fit_on=s.fit_on)
    jobs = []
    for level in s.levels:
      fm = formula.model_for(level * plan.b0_macs)
      jobs.append(Job(SweepModel(f"F{level:g}", "formula", level, fm.r, fm.d, fm.w, fm.rules,
                                 f"formula @ c={level:g}"), seed))
    return jobs

  seed = config.train.seed
  # Replicates and formula models depend on the results, so the process that finds the sweep complete trains
  # them (a single index or shard never does).
  whole = config.index is None and config.shard is None
  formula_count = len(s.levels) if s.formula_models else 0
  replicate_count = s.replicates * s.replicate_top * len(s.levels) if whole else 0
  progress = Progress(len(plan.models) + replicate_count + formula_count, len(done))
  try:
    if not train([Job(m, seed) for m in selected], progress):
      return {"preempted": True}
    if not all(m.id in done for m in plan.models):
      missing = sum(m.id not in done for m in plan.models)
      print(f"[sweep] this process's models are done; {missing} of {len(plan.models)} still to train elsewhere. "
            f"When all are, run: python -m tinynet_jax.analyze {workdir}", file=sys.stderr)
      return {"complete": False, "missing": missing}
    rows = read_results(results)
    if whole and s.replicates:
      if s.formula_models and speculate:  # the fit after replicates often picks the same points: compile them
        first_rows = list(rows)
        lookahead.speculate(lambda: [train_config(config, j.model, j.seed) for j in formula_jobs(first_rows)])
      if not train(replicate_jobs(rows, plan.models, replicates=s.replicates, top=s.replicate_top,
                                  metric=s.metric, seed=seed), progress):
        return {"preempted": True}
      rows = read_results(results)
    if s.formula_models and whole:
      if not train(formula_jobs(rows), progress):
        return {"preempted": True}
      rows = read_results(results)
  finally:
    lookahead.close()
  budget = (f"{config.train.total_steps or config.train.num_epochs} "
            f"{'steps' if config.train.total_steps else 'epochs'} per model, batch {config.train.batch_size}, "
            f"recipe {config.train.recipe}")
  if not primary:
    return {"complete": True}
  summary = analysis.analyze(results, workdir, metric=s.metric, fit_on=s.fit_on, preferred_fig2_level=s.fig2_level,
                             title=config.get("title", "Rubik's cube sweep"), budget=budget,
                             dataset=config.train.dataset,
                             notes=[f"level {st.level:g}: acceptance {st.acceptance_rate:.0%} "
                                    f"({st.accepted} of {st.draws} draws)" for st in plan.stats])
  summary["complete"] = True
  return summary
