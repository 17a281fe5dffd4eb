"""The sweep runner's bookkeeping in this process with a fake trainer (kill and rerun, skip finished models,
index and shard selection, results.jsonl), then the main job end to end once: a tiny real sweep on digits through
`python -m tinynet_jax.main`, the formula and analyze CLIs and the colab over its outputs; bad input.
"""
import importlib.util
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, slow
from tinynet_jax.errors import SearchError
from tinynet_jax.search import runner
from tinynet_jax.search.results import read_results

# The demo sweep on digits (6 random models, 2 at each of 3 levels; then the best of each level with a second seed;
# then 3 formula models) is what the fake-trainer tests plan. The real one is cut to 6 steps a model.
TINY_SWEEP = ["--config=configs/sweep.py:demo,dataset=digits", "--config.train.total_steps=6",
              "--config.train.log_every_steps=3"]
ONE_DEVICE = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
FORMULA_IDS = ["F0.25", "F0.125", "F0.0625"]


def result_ids(workdir):
  path = Path(workdir) / "results.jsonl"
  return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.exists() else []


def sweep_config(arg="demo,dataset=digits", **fields):
  """configs/sweep.py:`arg` with top-level `fields` set, as `python -m tinynet_jax.main` would build it."""
  spec = importlib.util.spec_from_file_location("sweep_config", os.path.join(REPO, "configs", "sweep.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  for key, value in fields.items():
    setattr(config, key, value)
  config.lock()
  return config


class FakeTrainer:
  """Stands in for `train_and_evaluate`: records the models it is asked to train (by workdir name) and is
  'killed' at call `kill_at`, by preemption (SIGTERM's result) or by an exception (the process dying)."""

  def __init__(self, kill_at=None, how="preempted"):
    self.kill_at, self.how, self.trained, self.configs = kill_at, how, [], []

  def __call__(self, config, workdir):
    self.trained.append(Path(workdir).name)
    self.configs.append(config)
    if len(self.trained) == self.kill_at:
      if self.how == "preempted":
        return {"preempted": True}
      raise KeyboardInterrupt("killed")
    top1 = min(0.99, 0.3 + 0.3 * config.r + 0.2 * config.d + 0.1 * config.w)  # some smooth accuracy
    top1 -= 0.01 * config.seed  # replicates differ
    return {"steps": 6, "top1": top1, "top5": min(1.0, top1 + 0.05), "ema_top1": top1 - 0.01,
            "ema_top5": min(1.0, top1 + 0.04), "wall_seconds": 1.5}


def replicate_ids(plan):
  """The fake trainer's best random model of each level, with seed 1: the demo's replicates."""
  best = {}
  for m in plan.models:
    if m.kind == "random":
      top1 = 0.3 + 0.3 * m.r + 0.2 * m.d + 0.1 * m.w
      if m.level not in best or top1 > best[m.level][0]:
        best[m.level] = (top1, m.id)
  return [best[level][1] + "-s1" for level in sorted(best)]  # cheapest level first, as the runner trains them


@pytest.fixture(scope="module")
def plan():
  return runner.make_plan(sweep_config())


@pytest.fixture
def analyses(monkeypatch):
  """The GP fit and the report stubbed out (seconds each; the real sweep below runs them): the list of the
  result ids each analysis saw. The stub formula's model at every level is (0.5, 0.5, 0.5)."""
  seen = []
  formula = SimpleNamespace(model_for=lambda macs: SimpleNamespace(r=0.5, d=0.5, w=0.5, rules="tinynet"))
  monkeypatch.setattr(runner.analysis, "fit", lambda rows, **kwargs: ([], list(rows), formula))

  def analyze(results, out_dir, **kwargs):
    assert kwargs["metric"] == "top1" and kwargs["fit_on"] == "auto" and kwargs["dataset"] == "digits"
    seen.append(sorted(row["id"] for row in read_results(results)))
    return {"report": str(Path(out_dir) / "report.md")}

  monkeypatch.setattr(runner.analysis, "analyze", analyze)
  return seen


@pytest.mark.parametrize("how", ["preempted", "exception"])
def test_a_killed_sweep_completes_with_every_model_exactly_once(how, plan, analyses, tmp_path, capsys):
  config = sweep_config()
  first = FakeTrainer(kill_at=3, how=how)
  if how == "preempted":
    assert runner.run_sweep(config, tmp_path, train_fn=first) == {"preempted": True}
  else:
    with pytest.raises(KeyboardInterrupt):
      runner.run_sweep(config, tmp_path, train_fn=first)
  planned = [m.id for m in plan.models]
  replicates = replicate_ids(plan)
  assert len(planned) == 6 and first.trained == planned[:3] and len(replicates) == 3
  interrupted_after = len(result_ids(tmp_path))
  assert interrupted_after == 2
  with open(tmp_path / "results.jsonl", "a") as f:
    f.write('{"id": "' + planned[2] + '", "ki')  # a write the kill tore: dropped, the model trained again
  capsys.readouterr()

  rerun = FakeTrainer()
  summary = runner.run_sweep(config, tmp_path, train_fn=rerun)
  everything = planned + replicates + FORMULA_IDS
  assert summary["complete"] and analyses == [sorted(everything)]
  # Finished models are skipped; the interrupted one is asked for again in its own workdir (its checkpoint);
  # then the best of each level with another seed, then the formula's models.
  assert rerun.trained == planned[2:] + replicates + FORMULA_IDS
  ids = result_ids(tmp_path)
  assert sorted(ids) == sorted(everything) and len(ids) == len(set(ids)) == 12
  err = capsys.readouterr().err
  assert f"[sweep 2/12] training {planned[2]}" in err and "[sweep 12/12]" in err
  plan_file = json.loads((tmp_path / "sweep.json").read_text())
  assert [m["id"] for m in plan_file["models"]] == planned
  for stat in plan_file["acceptance"]:
    assert 0 < stat["acceptance_rate"] <= 1

  again = FakeTrainer()  # a finished sweep trains nothing and reports again
  assert runner.run_sweep(config, tmp_path, train_fn=again)["complete"] and again.trained == []
  assert result_ids(tmp_path) == ids and len(analyses) == 2


def test_results_rows_and_the_configs_each_model_is_trained_with(plan, analyses, tmp_path):
  config = sweep_config()
  fake = FakeTrainer()
  runner.run_sweep(config, tmp_path, train_fn=fake)
  rows = {row["id"]: row for row in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
  models = {m.id: m for m in plan.models}
  for trained, train_config in zip(fake.trained, fake.configs):
    row = rows[trained]
    assert (train_config.r, train_config.d, train_config.w, train_config.rules) == (row["r"], row["d"], row["w"],
                                                                                    row["rules"])
    assert train_config.model == "" and train_config.dataset == "digits"
    if trained in models:
      assert (row["r"], row["d"], row["w"]) == (models[trained].r, models[trained].d, models[trained].w)
  for row in rows.values():
    assert row["dataset"] == "digits" and row["steps"] == 6 and 0 <= row["top1"] <= 1
    assert row["resolution"] == int(32 * row["r"]) and row["macs"] > 0 and row["params"] > 0
    assert row["c"] == pytest.approx(row["macs"] / plan.b0_macs) and row["train_seconds"] == 1.5
  assert {rows[i]["kind"] for i in FORMULA_IDS} == {"formula"}
  assert {(rows[i]["r"], rows[i]["d"], rows[i]["w"]) for i in FORMULA_IDS} == {(0.5, 0.5, 0.5)}  # the fit's
  # Replicates: the same network as their model, seed 1 (trained with it), marked; every other row seed 0.
  replicates = replicate_ids(plan)
  for trained, train_config in zip(fake.trained, fake.configs):
    assert train_config.seed == rows[trained]["seed"] == (1 if trained in replicates else 0)
  for rid in replicates:
    row, original = rows[rid], rows[rows[rid]["replicate_of"]]
    assert rid == original["id"] + "-s1" and original.get("replicate_of") is None
    assert all(row[k] == original[k] for k in ("r", "d", "w", "macs", "kind", "level"))
  assert sorted(i for i, row in rows.items() if row.get("replicate_of")) == sorted(replicates)


def test_index_and_shards_train_their_models_and_the_last_one_analyses(plan, analyses, tmp_path, capsys):
  planned = [m.id for m in plan.models]
  one = FakeTrainer()
  assert runner.run_sweep(sweep_config(index=3), tmp_path, train_fn=one) == {"complete": False, "missing": 5}
  assert one.trained == [planned[3]] and result_ids(tmp_path) == [planned[3]]
  assert "run: python -m tinynet_jax.analyze" in capsys.readouterr().err
  trained = []
  for i in (1, 2, 0):
    shard = FakeTrainer()
    summary = runner.run_sweep(sweep_config(shard=f"{i}/3"), tmp_path, train_fn=shard)
    assert shard.trained == [m for m in planned[i::3] if m != planned[3]]
    trained += shard.trained
    assert len(analyses) == (i == 0)  # only the shard that finds the sweep complete analyses it
  assert summary["complete"] and analyses == [sorted(planned)]
  assert sorted(trained + [planned[3]]) == sorted(planned)
  # A shard trains neither replicates nor the formula's models; the unsharded run does.
  assert not set(FORMULA_IDS + replicate_ids(plan)) & set(result_ids(tmp_path))
  whole = FakeTrainer()
  runner.run_sweep(sweep_config(), tmp_path, train_fn=whole)
  assert whole.trained == replicate_ids(plan) + FORMULA_IDS
  assert analyses[-1] == sorted(planned + replicate_ids(plan) + FORMULA_IDS)


@pytest.mark.parametrize("speculate", [None, True])  # None: the default, off on this CPU
def test_each_new_network_is_compiled_ahead_before_it_trains(speculate, plan, analyses, tmp_path):
  """The look-ahead compiles every run but replicates (their model's program is compiled already), each before
  that run trains, and at most LOOKAHEAD runs ahead of the one training. With `speculate` (the default off CPU)
  the formula models compile while the replicates train; without (on CPU) only once the replicates are done."""
  events = []
  trainer = FakeTrainer()
  formula_compiled = threading.Event()

  def train_fn(config, workdir):
    if speculate and Path(workdir).name.endswith("-s1"):  # the speculation runs in a thread: let it come
      assert formula_compiled.wait(timeout=30), "no formula model was compiled while the replicates trained"
    events.append(("train", Path(workdir).name))
    return trainer(config, workdir)

  def compile_fn(config):
    events.append(("compile", (config.r, config.d, config.w, config.seed)))
    if (config.r, config.d, config.w) == (0.5, 0.5, 0.5):  # the stub fit's formula model
      formula_compiled.set()

  runner.run_sweep(sweep_config(), tmp_path, train_fn=train_fn, compile_fn=compile_fn, speculate=speculate)
  trained = [name for kind, name in events if kind == "train"]
  compiled = [what for kind, what in events if kind == "compile"]
  rows = {row["id"]: row for row in read_results(tmp_path / "results.jsonl")}
  new = [i for i in trained if not rows[i].get("replicate_of")]
  # Speculated or not, each formula model is compiled once: the stub fit gives the same (0.5, 0.5, 0.5) before and
  # after the replicates, so the second request is the same config and skipped.
  assert sorted(compiled) == sorted({(rows[i]["r"], rows[i]["d"], rows[i]["w"], rows[i]["seed"]) for i in new})
  for position, name in enumerate(trained):
    row = rows[name]
    if not row.get("replicate_of"):
      key = (row["r"], row["d"], row["w"], row["seed"])
      assert events.index(("compile", key)) < events.index(("train", name))
  last_replicate = max(events.index(("train", i)) for i in replicate_ids(plan))
  first_formula_compile = events.index(("compile", (0.5, 0.5, 0.5, 0)))
  assert (first_formula_compile < last_replicate) == bool(speculate)


def test_a_workdir_holds_one_sweep(analyses, tmp_path):
  runner.run_sweep(sweep_config(index=0), tmp_path, train_fn=FakeTrainer())
  with pytest.raises(SearchError, match="different sweep"):
    runner.run_sweep(sweep_config("demo,seed=1", index=0), tmp_path, train_fn=FakeTrainer())


# ---- one real sweep ------------------------------------------------------------------------------------------

# The real sweep's tests are opt-in (TINYNET_SLOW_TESTS=1): ~4 minutes on 2 cores (9 networks compiled), which
# CI's 12-minute pytest budget no longer holds; the runner's bookkeeping runs above with the fake trainer.
@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
  """The tiny demo sweep, really trained, in a real `python -m tinynet_jax.main` process."""
  from conftest import finish, start_python
  workdir = tmp_path_factory.mktemp("sweep")
  code, out, err = finish(start_python(["-m", "tinynet_jax.main", *TINY_SWEEP, f"--workdir={workdir}"],
                                       env=ONE_DEVICE), timeout=900)
  assert code == 0, err
  return workdir, out, err


@slow
def test_the_sweep_trains_every_model_once_and_writes_results_formula_figures_and_report(real_sweep):
  workdir, out, err = real_sweep
  plan = json.loads((workdir / "sweep.json").read_text())
  planned = [m["id"] for m in plan["models"]]
  assert len(planned) == 6
  ids = result_ids(workdir)
  replicates = [i for i in ids if i.endswith("-s1")]
  assert len(replicates) == 3 and {i[:-3] for i in replicates} <= set(planned)
  assert sorted(ids) == sorted(planned + replicates + FORMULA_IDS) and len(ids) == len(set(ids)) == 12
  for stat in plan["acceptance"]:
    assert 0 < stat["acceptance_rate"] <= 1
  rows = [json.loads(line) for line in (workdir / "results.jsonl").read_text().splitlines()]
  for row in rows:
    assert row["dataset"] == "digits" and row["steps"] == 6 and 0 <= row["top1"] <= 1
    assert row["resolution"] == int(32 * row["r"]) and row["macs"] > 0 and row["params"] > 0
  for name in ("formula.json", "report.md", "fig2_importance.png", "fig2_importance.svg", "fig3_formula.png",
               "fig3_formula.svg", "fig6_accuracy_vs_flops.png", "fig6_accuracy_vs_flops.svg"):
    assert (workdir / name).stat().st_size > 0, name
  for model in planned + replicates + FORMULA_IDS:  # each run really trained: its own workdir and final metrics
    assert json.loads((workdir / "models" / model / "final_metrics.json").read_text())["steps"] == 6
  report = (workdir / "report.md").read_text()
  assert "digits" in report and "fig6_accuracy_vs_flops.png" in report
  assert "Seed σ = " in report and "Seed noise: not measured" not in report  # the replicates' pooled sigma
  assert f"report: {workdir / 'report.md'}" in out
  assert "[sweep 12/12]" in err  # the progress line of the last run
  assert not [p for p in workdir.iterdir() if p.name.startswith(".")]  # no temp files left behind


@slow
def test_formula_cli_reads_the_sweeps_fit(real_sweep, cli):
  workdir = real_sweep[0]
  formula = json.loads((workdir / "formula.json").read_text())
  b0 = formula["b0_macs"]
  code, out, err = cli("tinynet_jax.formula", "--flops", 0.3 * b0, "--from", workdir / "formula.json", "--json",
                       "--emit-config")
  assert code == 0, err
  model = json.loads(out)["models"][0]
  assert abs(model["macs"] / (0.3 * b0) - 1) <= 0.05 and model["base_resolution"] == 32
  assert "--config.base_resolution=32" in model["command"]


@slow
def test_analyze_cli_over_the_results_file(real_sweep, cli, tmp_path):
  workdir = real_sweep[0]
  code, out, err = cli("tinynet_jax.analyze", workdir / "results.jsonl", "--out", tmp_path, "--fit-on", "level_best")
  assert code == 0, err
  assert (tmp_path / "report.md").exists() and (tmp_path / "formula.json").exists()


@slow
def test_the_rubiks_cube_colab_opens_the_sweep(real_sweep):
  """colabs/rubiks_cube.ipynb, headless, on this test's finished sweep (it trains only when there is none)."""
  from test_colabs import execute
  workdir = real_sweep[0]
  notebook = execute("rubiks_cube.ipynb", env={"TINYNET_SWEEP_DIR": str(workdir)})
  text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
  assert "frontier" in text and "c=0.125" in text
  assert sum("image/png" in o.get("data", {}) for c in notebook.cells if c.cell_type == "code"
             for o in c.outputs) == 3  # Fig. 2, 3 and 6


def test_formula_cli_paper_preset(cli):
  code, out, err = cli("tinynet_jax.formula", "--flops", "150M", "24M", "--emit-config")
  assert code == 0, err
  assert "paper preset" in out and "python -m tinynet_jax.main" in out


# ---- bad input -----------------------------------------------------------------------------------------------

BAD = [
    ("tinynet_jax.formula", ["--flops", "1K"], "no network reaches"),
    ("tinynet_jax.formula", ["--flops", "abc"], "not a FLOPs budget"),
    ("tinynet_jax.formula", ["--flops", "1M", "--from", "/nonexistent/formula.json"], "cannot read formula"),
    ("tinynet_jax.analyze", ["{empty}"], "holds no results"),
    ("tinynet_jax.analyze", ["{corrupt}"], "not a JSON line"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.levels=(0.5,0.5)"], "repeat"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.r_range=(1.0,0.5)"], "r_range"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.shard=2/2"], "shard"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo,index=99"], "out of range"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.fit_on=best"], "fit_on"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo,per_level=0"],
     "sweep.per_level must be a positive integer, got 0"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo,index=-5"], "index must be an integer >= 0, got -5"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo,dataset="], "train.dataset must be a non-empty string"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.shard="], "shard must be 'i/n'"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.seed=-1"], "sweep.seed must be"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.sweep.fig2_level=0.3"],
     "sweep.fig2_level=0.3 must be one of sweep.levels (0.25, 0.125, 0.0625)"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.train.batch_size=0"],
     "train.batch_size must be a positive integer, got 0"),
    ("tinynet_jax.main", ["--config=configs/sweep.py:demo", "--config.train.model=tinynet_a"],
     "train.model='tinynet_a' is set per model by the sweep"),
]
# These run in a real process too: the exit code and stderr of the process itself (the rest run in this one).
REAL_PROCESS = {"not a FLOPs budget", "not a JSON line", "index must be an integer >= 0, got -5"}


@pytest.mark.parametrize("module, args, needle", BAD, ids=[b[2] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(module, args, needle, tmp_path, cli):
  (tmp_path / "empty.jsonl").write_text("")
  (tmp_path / "corrupt.jsonl").write_text("{not json\n")
  workdir = tmp_path / "run"
  args = [a.format(empty=tmp_path / "empty.jsonl", corrupt=tmp_path / "corrupt.jsonl") for a in args]
  if module == "tinynet_jax.main":
    args.append(f"--workdir={workdir}")
  for run in (cli, cli.real) if needle in REAL_PROCESS else (cli,):
    code, out, err = run(module, *args)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err
    assert not workdir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.jsonl", "empty.jsonl"]


# Each sweep field's rule, cheaply (no plan, no training): zero, negative, non-finite, out-of-range, wrong-typed.
NAN, INF = float("nan"), float("inf")
BAD_SWEEP_FIELDS = {
    "job": ["train"], "title": [""], "index": [-1, True, 1.5], "shard": ["", "None", "2/2", "1", "a/b", 3],
    "sweep.levels": [(), (0.25, 0.25), (0.0,), (5.0,), (NAN,), (True,), ("a",), 0.5, None],
    "sweep.per_level": [0, -1, True, 2.5, None],
    "sweep.r_range": [(1.0, 0.5), (0.5, 0.5), (0.0, 1.0), (0.5,), (0.5, INF), None],
    "sweep.d_range": [(-1.0, 1.0)], "sweep.w_range": [(0.25, True)],
    "sweep.tolerance": [0.0, 1.0, NAN, -0.03], "sweep.rules": ["tiny"], "sweep.seed": [-1, True, 2 ** 40],
    "sweep.flops_classes": [0, True], "sweep.baselines": [1, None], "sweep.tinynets": ["yes"],
    "sweep.formula_models": [0], "sweep.metric": ["top3"], "sweep.fit_on": ["best", None],
    "sweep.replicates": [-1, True, 1.5], "sweep.replicate_top": [0, True], "sweep.compilation_cache": [1],
    "sweep.fig2_level": [0.0, 5.0, NAN, True], "sweep.fig2_models": [-1, True],
    "train.batch_size": [0], "train.seed": [-1], "train.dataset": [""],
}


@pytest.mark.parametrize("name, value", [(n, v) for n, values in BAD_SWEEP_FIELDS.items() for v in values])
def test_every_sweep_field_refuses_bad_values(name, value):
  from test_configs import assert_refused
  assert_refused(sweep_config(), name, value)


@pytest.mark.parametrize("fields, needle", [
    (dict(fig2_level=0.5), "sweep.fig2_level=0.5 must be one of sweep.levels (0.25, 0.125, 0.0625)"),
    (dict(fig2_level=None, fig2_models=3), "sweep.fig2_models=3 needs sweep.fig2_level"),
    (dict(mixup=0.2), "unknown config field sweep.mixup"),
])
def test_sweep_values_that_would_be_dropped_are_refused(fields, needle):
  import ml_collections
  from tinynet_jax.errors import ConfigError
  config = sweep_config().to_dict()
  config["sweep"].update(fields)
  with pytest.raises(ConfigError) as info:
    runner.check_sweep_config(ml_collections.ConfigDict(config), 1, 1)
  assert needle in str(info.value)


@pytest.mark.parametrize("field, value", [("model", "tinynet_a"), ("r", 0.5), ("w", 1.0), ("rules", "efficientnet")])
def test_a_train_model_field_is_refused_since_each_model_sets_it(field, value):
  from test_configs import with_field
  from tinynet_jax.errors import ConfigError
  with pytest.raises(ConfigError, match=f"train.{field}={value!r} is set per model by the sweep"):
    runner.check_sweep_config(with_field(sweep_config(), f"train.{field}", value), 1, 1)
