"""The search's pure parts: sampler, shards, Pareto frontier, the formula and its paper preset, results files."""
import json

import numpy as np
import pytest

from tinynet_jax.costs import count_macs, reference_macs
from tinynet_jax.errors import SearchError
from tinynet_jax.search import sampler
from tinynet_jax.search.formula import Formula, fit_formula, paper_formula, parse_budget
from tinynet_jax.search.frontier import eps_frontier, level_eps, pareto_frontier, top_k_per_level
from tinynet_jax.search.results import drop_torn_tail, read_results
from tinynet_jax.arch import TINYNETS, ZOO, model_spec

RANGES = dict(r_range=(0.35, 1.0), d_range=(0.3, 1.5), w_range=(0.25, 1.2))


@pytest.fixture(scope="module")
def sweep():
  return sampler.sample_random((0.5, 0.25, 0.125, 0.0625), 6, tolerance=0.03, seed=3, base_resolution=224, **RANGES)


def test_sampled_models_hit_their_level_inside_the_ranges(sweep):
  models, stats = sweep
  b0 = reference_macs(224)
  assert b0 == count_macs(model_spec("efficientnet_b0"))
  assert len(models) == 24 and len({m.id for m in models}) == 24
  for model in models:
    macs = sampler.model_macs(model, 224)
    assert abs(macs / (model.level * b0) - 1) <= 0.03, model
    for value, (lo, hi) in ((model.r, RANGES["r_range"]), (model.d, RANGES["d_range"]),
                            (model.w, RANGES["w_range"])):
      assert lo <= value <= hi, model
  assert len({m.spec(224) for m in models}) == 24  # no network twice
  for stat in stats:
    assert stat.accepted == 6 and stat.draws >= 6 and 0 < stat.acceptance_rate <= 1


def test_the_same_seed_gives_the_same_sweep_and_another_seed_another(sweep):
  again, _ = sampler.sample_random((0.5, 0.25, 0.125, 0.0625), 6, tolerance=0.03, seed=3, base_resolution=224,
                                   **RANGES)
  assert again == sweep[0]
  other, _ = sampler.sample_random((0.5, 0.25, 0.125, 0.0625), 6, tolerance=0.03, seed=4, base_resolution=224,
                                   **RANGES)
  assert other != sweep[0]


def test_baselines_match_the_levels_under_efficientnet_rules():
  levels = (0.5, 0.25, 0.125, 0.0625)
  models = sampler.baselines(levels, base_resolution=224)
  b0 = reference_macs(224)
  assert [m.id for m in models] == ["B-1", "B-2", "B-3", "B-4"]
  for model, level in zip(models, levels):
    assert model.rules == "efficientnet"
    assert abs(sampler.model_macs(model, 224) / (level * b0) - 1) < 0.15  # the phi staircase is coarse
  assert [m.id for m in sampler.tinynets()] == ["tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e"]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(levels=(0.0,)), "levels"), (dict(levels=(0.5, 0.5)), "repeat"), (dict(r_range=(1.0, 0.5)), "r_range"),
    (dict(tolerance=0.0), "tolerance"), (dict(w_range=(0.25, 0.26), tolerance=0.001), "draws"),
    (dict(per_level=(2, 1)), "one per level"), (dict(per_level=-1), "non-negative"),
])
def test_bad_sampler_input(kwargs, needle):
  args = dict(levels=(0.5,), per_level=2, tolerance=0.03, seed=0, base_resolution=224, **RANGES)
  args.update(kwargs)
  levels = args.pop("levels")
  with pytest.raises(SearchError, match=needle):
    sampler.sample_random(levels, **args)


def test_per_level_counts_and_their_streams():
  """One count per level; each level draws from its own stream, so a larger count only appends models."""
  args = dict(tolerance=0.03, seed=0, base_resolution=224, **RANGES)
  models, stats = sampler.sample_random((0.5, 0.25), (3, 1), **args)
  assert [m.level for m in models] == [0.5, 0.5, 0.5, 0.25] and [s.accepted for s in stats] == [3, 1]
  fewer, _ = sampler.sample_random((0.5, 0.25), 1, **args)
  assert fewer == [models[0], models[3]]


def test_select_index_and_shards():
  models = list(range(10))
  assert sampler.select(models) == models
  assert sampler.select(models, index=3) == [3]
  shards = [sampler.select(models, shard=f"{i}/3") for i in range(3)]
  assert sorted(sum(shards, [])) == models and shards[1] == [1, 4, 7]
  for bad in (dict(index=10), dict(shard="3/3"), dict(shard="a/b"), dict(shard="1"), dict(index=0, shard="0/2")):
    with pytest.raises(SearchError):
      sampler.select(models, **bad)


def _row(i, macs, acc):
  return {"id": str(i), "macs": macs, "top1": acc}


def test_pareto_frontier_on_hand_made_cases():
  rows = [_row(0, 10, 0.50), _row(1, 20, 0.60), _row(2, 20, 0.55),  # same MACs, lower accuracy: dominated
          _row(3, 30, 0.60),  # costs more, no more accurate: dominated
          _row(4, 40, 0.70), _row(5, 40, 0.70),  # exact tie: both stay
          _row(6, 5, 0.30), _row(7, 50, 0.65)]  # cheapest stays; a dearer but worse one goes
  assert [r["id"] for r in pareto_frontier(rows)] == ["6", "0", "1", "4", "5"]
  assert pareto_frontier([]) == []
  with pytest.raises(SearchError, match="top1"):
    pareto_frontier([{"id": "x", "macs": 1, "top1": float("nan")}])


def test_paper_preset_gives_back_tinynet_a_to_e():
  formula = paper_formula()
  assert TINYNETS == ("tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e")
  for name in TINYNETS:
    entry = ZOO[name]
    macs = count_macs(model_spec(name))
    model = formula.model_for(macs)
    assert abs(model.r - entry.r) <= 0.02 and abs(model.d - entry.d) <= 0.02, (name, model)
    assert abs(model.macs / macs - 1) <= 0.02, (name, model)
    assert model.resolution == model_spec(name).resolution


def test_formula_round_trips_and_rejects_unreachable_budgets(tmp_path):
  formula = paper_formula()
  formula.save(tmp_path / "f.json")
  loaded = Formula.load(tmp_path / "f.json")
  assert loaded.model_for(150e6) == formula.model_for(150e6)
  curve = formula.curve(num=8)
  assert np.all(np.isfinite(curve["r_mean"])) and curve["w"].shape == (8,)
  with pytest.raises(SearchError, match="no network reaches"):
    formula.model_for(1e3)
  for bad in ("", "{", json.dumps({"format": "other"}), json.dumps({"format": "tinynet_jax.formula/1"})):
    (tmp_path / "bad.json").write_text(bad)
    with pytest.raises(SearchError):
      Formula.load(tmp_path / "bad.json")


def test_too_few_frontier_points_to_fit():
  rows = [{"id": "a", "r": 0.5, "d": 0.5, "w": 0.5, "macs": 100}, {"id": "b", "r": 0.6, "d": 0.6, "w": 0.6,
                                                                   "macs": 200}]
  with pytest.raises(SearchError, match="too few points to fit"):
    fit_formula(rows, b0_macs=400, base_resolution=224, rules="tinynet", num_classes=1000, source="test")


def test_parse_budget():
  assert parse_budget("150M") == 150e6 and parse_budget("1.2G") == 1.2e9 and parse_budget("24e6") == 24e6
  for bad in ("", "M", "-5M", "abc", "nanM"):
    with pytest.raises(SearchError):
      parse_budget(bad)


def _result(i):
  return {"id": f"m{i}", "kind": "random", "level": 0.5, "r": 0.5, "d": 0.5, "w": 0.5, "rules": "tinynet",
          "macs": 100 + i, "c": 0.5, "b0_macs": 200, "base_resolution": 224, "flops_classes": 1000, "top1": 0.5,
          "ema_top1": 0.5}


def test_results_file_reading(tmp_path):
  path = tmp_path / "results.jsonl"
  lines = [json.dumps(_result(i)) for i in range(3)] + [json.dumps(_result(1))]  # a duplicate id
  path.write_text("\n".join(lines) + "\n" + '{"id": "m9", "ki')  # and a torn last write
  with pytest.raises(SearchError, match=":5 is not a JSON line"):
    read_results(path)
  assert [r["id"] for r in read_results(path, allow_torn_tail=True)] == ["m0", "m1", "m2"]
  drop_torn_tail(path)
  assert path.read_text().endswith("\n") and [r["id"] for r in read_results(path)] == ["m0", "m1", "m2"]
  path.write_text("")
  with pytest.raises(SearchError, match="no results"):
    read_results(path)
  path.write_text('{"id": "x"}\n')
  with pytest.raises(SearchError, match="missing"):
    read_results(path)
  with pytest.raises(SearchError, match="no results file"):
    read_results(tmp_path / "nope.jsonl")


def test_small_resolution_formulas_move_the_input_a_pixel_when_the_width_staircase_jumps():
  """At a 32 px base one channel step of 8 can jump over a budget; the formula then shifts r by a pixel or
  two (nearest first) instead of failing. The demo's own frontier (digits, 80 steps) once hit this at c=0.25."""
  rows = [dict(id="a", r=0.627, d=0.325, w=0.28, macs=532_713), dict(id="b", r=0.945, d=0.69, w=0.3, macs=1_060_000),
          dict(id="c", r=0.818, d=0.489, w=0.646, macs=2_140_000)]
  b0 = reference_macs(32, 10)
  formula = fit_formula(rows, b0_macs=b0, base_resolution=32, rules="tinynet", num_classes=10, source="test")
  for c in np.geomspace(0.0625, 0.25, 9):
    model = formula.model_for(c * b0)
    assert abs(model.macs / (c * b0) - 1) <= 0.05
    mean = formula.predict([c])["r_mean"][0]
    assert abs(model.resolution - int(32 * round(float(mean), 3))) <= 2
  assert formula._nearby_resolutions(0.854) == [0.854, 0.813, 0.875, 0.782, 0.907]


def test_eps_frontier_counts_one_levels_macs_as_equal_cost():
  rows = [dict(_row(0, 100, 0.50), level=0.5, c=0.50), dict(_row(1, 102, 0.60), level=0.5, c=0.51),
          dict(_row(2, 97, 0.55), level=0.5, c=0.485), dict(_row(3, 200, 0.58), level=1.0, c=1.0),
          dict(_row(4, 205, 0.70), level=1.0, c=1.025)]
  assert [r["id"] for r in pareto_frontier(rows)] == ["2", "1", "4"]  # the cheapest of a level rides along
  eps = level_eps(rows)
  assert eps == pytest.approx(1.03 / 0.97 - 1)
  assert [r["id"] for r in eps_frontier(rows, eps=eps)] == ["1", "4"]
  assert [r["id"] for r in eps_frontier(rows, eps=eps, delta=0.06)] == ["2", "1", "4"]  # 2 is within noise of 1
  assert [r["id"] for r in top_k_per_level(rows, k=2)] == ["2", "1", "3", "4"]
  with pytest.raises(SearchError):
    top_k_per_level(rows, k=0)
  with pytest.raises(SearchError):
    eps_frontier(rows, eps=-1)


def test_old_formula_files_still_load(tmp_path):
  """Format 1 (before the fitted points' rule was recorded) loads; selection and dataset read as not recorded."""
  data = paper_formula().to_dict()
  for key in ("selection", "metric", "c_tolerance", "dataset", "c_reference", "band"):
    data.pop(key)
  data["format"] = "tinynet_jax.formula/1"
  (tmp_path / "old.json").write_text(json.dumps(data))
  old = Formula.load(tmp_path / "old.json")
  assert old.selection is None and old.dataset is None and old.measured
  assert old.model_for(150e6).macs == paper_formula().model_for(150e6).macs


def test_paper_preset_has_no_band_and_a_and_e_are_not_extrapolations():
  formula = paper_formula()
  assert not formula.measured and formula.dataset == "imagenet2012"
  for budget in (337.9e6, 339e6, 24.4e6, 24e6, 150e6):  # A and E: counted and published MACs
    model = formula.model_for(budget)
    assert not model.extrapolated and model.r_std is None and model.d_std is None, budget
  assert formula.model_for(600e6).extrapolated and formula.model_for(15e6).extrapolated


def test_formula_cli_labels_c_and_emits_the_formulas_own_dataset(tmp_path, capsys):
  from tinynet_jax.tools import formula as cli
  assert cli.main(["--flops", "337.9M", "24.4M", "--emit-config"]) == 0
  out = capsys.readouterr().out
  assert "c = MACs / MACs of EfficientNet-B0 at 224 px with a 1000-class head" in out
  assert "±" not in out and "extrapolated" not in out and "no uncertainty" not in out
  assert "none: a curve through published points" in out and "dataset=imagenet2012" in out
  rows = [dict(id=k, r=r, d=d, w=0.5, macs=m) for k, r, d, m in
          (("a", 0.627, 0.325, 532_713), ("b", 0.945, 0.69, 1_060_000), ("c", 0.818, 0.489, 2_140_000))]
  fit = fit_formula(rows, b0_macs=reference_macs(32, 10), base_resolution=32, rules="tinynet", num_classes=10,
                    source="test", dataset="cluttered", selection={"rule": "top_k", "k": 1, "description": "x"})
  fit.save(tmp_path / "f.json")
  assert cli.main(["--flops", "1.2M", "--from", str(tmp_path / "f.json"), "--emit-config"]) == 0
  out = capsys.readouterr().out
  assert "dataset=cluttered --config.base_resolution=32" in out and "imagenet2012" not in out
  assert "32 px with a 10-class head" in out and "± 2σ" in out and "not a confidence interval" in out
  data = json.loads((tmp_path / "f.json").read_text())
  data.pop("dataset")
  (tmp_path / "f.json").write_text(json.dumps(data))
  with pytest.raises(SearchError, match="pass --dataset"):
    cli.main(["--flops", "1.2M", "--from", str(tmp_path / "f.json"), "--emit-config"])


def test_default_plan_brackets_tinynet_a_to_e():
  import importlib.util
  from pathlib import Path
  spec = importlib.util.spec_from_file_location("sweep_config", Path(__file__).parents[1] / "configs" / "sweep.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  s = config.sweep
  b0 = reference_macs(224)
  cs = [count_macs(model_spec(name)) / b0 for name in TINYNETS]
  tolerance = (1 + s.tolerance) / (1 - s.tolerance)
  assert min(s.levels) / tolerance <= min(cs) and max(cs) <= max(s.levels) * tolerance  # A..E interpolated
  assert len(s.levels) * s.per_level == 100 and s.replicates == 0 and s.fit_on == "top_k"
  assert "30 epochs x 50,000 = 1.5M images" in module.__doc__  # our imagenet100, not CMC's 126,689
  demo = module.get_config("demo").sweep
  assert demo.levels == (0.25, 0.125, 0.0625) and demo.fit_on == "auto"  # the demo branch is someone else's
