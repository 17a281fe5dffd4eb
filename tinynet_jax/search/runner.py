"""The sweep runner: plan the models, train each (resumably), record results, then fit and report.

    DIR/sweep.json          the plan: every model and the sampler's acceptance rates (written once)
    DIR/models/<id>/        each model's training workdir (checkpoints, metrics, final_metrics.json)
    DIR/results.jsonl       one line per finished model, appended atomically
    DIR/formula.json, DIR/report.md, DIR/fig*.png|svg   the analysis, once every planned model has a result

Rerunning the same command skips finished models and resumes a partial one from its checkpoint. `index` runs
one model and `shard='i/n'` a slice, so a cluster can fan out; the analysis runs in whichever process finds
the sweep complete (or later, with ``python -m tinynet_jax.analyze DIR``).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax

from tinynet_jax import data
from tinynet_jax.costs import count_params
from tinynet_jax.errors import SearchError
from tinynet_jax.files import append_json_line, atomic_write_json
from tinynet_jax.search import analysis, sampler
from tinynet_jax.search.results import RESULTS, drop_torn_tail, read_results
from tinynet_jax.search.sampler import SweepModel
from tinynet_jax.train import train_and_evaluate
from tinynet_jax.train.config import check_config, dataset_options

PLAN = "sweep.json"


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


def train_config(config, model: SweepModel):
  """The training config of one sweep model: the sweep's recipe at the model's (r, d, w)."""
  c = copy.deepcopy(config.train)
  with c.unlocked():
    c.model = ""
    c.r, c.d, c.w, c.rules = model.r, model.d, model.w, model.rules
  return c


def result_row(model: SweepModel, plan: Plan, final: dict[str, Any], dataset: str, num_classes: int) -> dict:
  spec = model.spec(plan.base_resolution)
  macs = sampler.model_macs(model, plan.base_resolution, plan.flops_classes)
  return {**model.to_dict(), "resolution": spec.resolution, "macs": macs, "c": macs / plan.b0_macs,
          "b0_macs": plan.b0_macs, "base_resolution": plan.base_resolution, "flops_classes": plan.flops_classes,
          "params": count_params(spec, num_classes), "dataset": dataset, "steps": final["steps"],
          **{k: final[k] for k in ("top1", "top5", "ema_top1", "ema_top5")},
          "train_seconds": final["wall_seconds"]}


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
  """One line per model on stderr: models done / total, the last result, and the ETA."""

  def __init__(self, total: int, done: int):
    self.total, self.done, self.start, self.trained = total, done, time.time(), 0

  def starting(self, model: SweepModel, resolution: int) -> None:
    print(f"[sweep {self.done}/{self.total}] training {model.id} ({model.label}: r={model.r:g} d={model.d:g} "
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


def run_sweep(config, workdir: str | Path, *, train_fn: Callable = train_and_evaluate) -> dict[str, Any]:
  """Trains the selected models of the sweep `config` in `workdir`, then analyses it when it is complete.

  `train_fn(train_config, model_workdir) -> final metrics` trains one model, resuming from its workdir; a result
  with ``preempted`` stops the sweep (the tests pass a fake one to check the bookkeeping without training).
  """
  s = config.sweep
  # Everything that can be wrong with the request is checked before anything is written.
  plan = make_plan(config)
  selected = sampler.select(plan.models, index=config.index, shard=config.shard)
  check_config(config.train, jax.process_count(), jax.device_count())
  info = data.dataset_info(config.train.dataset, config.train.data_dir, **dataset_options(config.train))
  if s.metric not in analysis.METRICS:
    raise SearchError(f"sweep.metric must be one of {', '.join(analysis.METRICS)}, got {s.metric!r}")
  if s.fit_on not in analysis.FIT_ON:
    raise SearchError(f"sweep.fit_on must be one of {', '.join(analysis.FIT_ON)}, got {s.fit_on!r}")
  workdir = Path(workdir)
  _check_plan_file(workdir / PLAN, plan)
  primary = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  if primary and not (workdir / PLAN).exists():
    atomic_write_json(workdir / PLAN, plan.to_dict())
  for stat in plan.stats:
    logging.warning("level %g: %d models from %d draws (acceptance %.0f%%)", stat.level, stat.accepted, stat.draws,
                    100 * stat.acceptance_rate)

  results = workdir / RESULTS
  if primary:
    drop_torn_tail(results)
  done = {row["id"] for row in read_results(results, allow_torn_tail=True)}

  def train(models: list[SweepModel], progress: Progress) -> bool:
    todo = [m for m in models if m.id not in done]
    for position, model in enumerate(todo):
      progress.starting(model, model.spec(plan.base_resolution).resolution)
      final = train_fn(train_config(config, model), workdir / "models" / model.id)
      if final.get("preempted"):
        return False
      row = result_row(model, plan, final, config.train.dataset, info.num_classes)
      if primary:
        append_json_line(results, row)
      done.add(model.id)
      progress.finished(row, len(todo) - position - 1)
    return True

  formula_count = len(s.levels) if s.formula_models else 0
  progress = Progress(len(plan.models) + formula_count, len(done))
  if not train(selected, progress):
    return {"preempted": True}
  if not all(m.id in done for m in plan.models):
    missing = sum(m.id not in done for m in plan.models)
    print(f"[sweep] this process's models are done; {missing} of {len(plan.models)} still to train elsewhere. "
          f"When all are, run: python -m tinynet_jax.analyze {workdir}", file=sys.stderr)
    return {"complete": False, "missing": missing}

  rows = read_results(results)
  budget = (f"{config.train.total_steps or config.train.num_epochs} "
            f"{'steps' if config.train.total_steps else 'epochs'} per model, batch {config.train.batch_size}, "
            f"recipe {config.train.recipe}")
  if s.formula_models and config.index is None and not config.shard:
    # Fig. 6's "tiny formula" models: the formula fitted on this sweep, at each level, trained the same way.
    _, _, formula = analysis.fit(rows, metric=s.metric, fit_on=s.fit_on)
    models = []
    for level in s.levels:
      fm = formula.model_for(level * plan.b0_macs)
      models.append(SweepModel(f"F{level:g}", "formula", level, fm.r, fm.d, fm.w, fm.rules,
                               f"formula @ c={level:g}"))
    if not train(models, progress):
      return {"preempted": True}
    rows = read_results(results)
  if not primary:
    return {"complete": True}
  summary = analysis.analyze(results, workdir, metric=s.metric, fit_on=s.fit_on, preferred_fig2_level=s.fig2_level,
                             title=config.get("title", "Rubik's cube sweep"), budget=budget,
                             dataset=config.train.dataset,
                             notes=[f"level {st.level:g}: acceptance {st.acceptance_rate:.0%} "
                                    f"({st.accepted} of {st.draws} draws)" for st in plan.stats])
  summary["complete"] = True
  return summary
