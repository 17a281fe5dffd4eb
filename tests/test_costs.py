"""Parameter and MAC counters, the width/phi solvers, and the cross-check against XLA's cost analysis."""
import jax
import jax.numpy as jnp
import pytest
from jax.extend import core as jax_core

from tinynet_jax import create_model
from tinynet_jax.costs import (count_macs, count_params, layer_costs, reference_macs, solve_phi, solve_width,
                               stage_costs)
from tinynet_jax.errors import SpecError
from tinynet_jax.arch import ZOO, build_spec, conv_output_size, conv_padding, model_spec

# Parameter counts of timm's models (timm results-imagenet.csv / sum(p.numel()) on timm 1.0; the list).
TIMM_PARAMS = {"efficientnet_b0": 5_288_548, "tinynet_a": 6_187_972, "tinynet_b": 3_730_562,
               "tinynet_c": 2_457_234, "tinynet_d": 2_338_446, "tinynet_e": 2_042_972}
# thop's MAC counts of the timm models, and the paper's FLOPs (official README / MindSpore README for B0).
THOP_MMACS = {"efficientnet_b0": 385.9, "tinynet_a": 336.9, "tinynet_b": 200.8, "tinynet_c": 99.6,
              "tinynet_d": 51.6, "tinynet_e": 24.4}
PAPER_MFLOPS = {"efficientnet_b0": 387, "tinynet_a": 339, "tinynet_b": 202, "tinynet_c": 100, "tinynet_d": 52,
                "tinynet_e": 24}


@pytest.mark.parametrize("name", sorted(TIMM_PARAMS))
def test_params_equal_timm(name):
  assert count_params(model_spec(name)) == TIMM_PARAMS[name]


@pytest.mark.parametrize("name", sorted(THOP_MMACS))
def test_macs_match_thop_and_paper(name):
  macs = count_macs(model_spec(name)) / 1e6
  assert macs == pytest.approx(THOP_MMACS[name], rel=0.01)
  assert macs == pytest.approx(PAPER_MFLOPS[name], rel=0.02)


def test_counts_at_other_resolutions_and_stage_sums():
  spec = model_spec("tinynet_a")
  assert count_macs(spec, resolution=spec.resolution) == count_macs(spec)
  assert count_macs(spec, resolution=224) > count_macs(spec) > count_macs(spec, resolution=96)
  assert count_macs(spec.with_resolution(224)) == count_macs(spec, resolution=224)
  for name in ZOO:
    spec = model_spec(name)
    rows = stage_costs(spec)
    assert [r.name for r in rows] == ["stem"] + [f"stage{i}" for i in range(7)] + ["head"]
    assert sum(r.macs for r in rows) == count_macs(spec)
    assert sum(r.params for r in rows) == count_params(spec)


def test_conv_geometry_is_pytorch_symmetric_padding():
  # timm pads ((s - 1) + (k - 1)) // 2 each side; PyTorch's output size is floor((n + 2p - k) / s) + 1.
  assert [conv_padding(k, s) for k, s in ((1, 1), (3, 1), (3, 2), (5, 1), (5, 2))] == [0, 1, 1, 2, 2]
  assert [conv_output_size(n, k, s) for n, k, s in ((224, 3, 2), (112, 3, 1), (7, 5, 2), (33, 3, 2), (1, 1, 1))] \
      == [112, 112, 4, 17, 1]
  # B0's feature maps at 224 px (timm's feature_info reductions 2, 4, 8, 16, 32), in the MACs counter's layers.
  sizes = sorted({layer.in_size for layer in layer_costs(model_spec("efficientnet_b0")) if layer.kind == "conv"})
  assert sizes == [1, 7, 14, 28, 56, 112, 224]


def test_reference_macs_is_b0_the_unit_of_c():
  assert reference_macs() == count_macs(model_spec("efficientnet_b0")) == pytest.approx(385.9e6, rel=0.01)
  assert reference_macs(32, 10) == count_macs(model_spec("efficientnet_b0", base_resolution=32), num_classes=10)


def test_num_classes_only_changes_the_classifier():
  spec = model_spec("tinynet_b")
  assert count_params(spec) - count_params(spec, num_classes=10) == 990 * (1280 + 1)
  assert count_macs(spec) - count_macs(spec, num_classes=10) == 990 * 1280


@pytest.mark.parametrize("name", ["tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e"])
def test_solve_width_recovers_published_width(name):
  entry = ZOO[name]
  target = count_macs(model_spec(name))
  solution = solve_width(entry.r, entry.d, target)
  assert solution.macs == target
  assert solution.low <= entry.w <= solution.high  # the published w lies on the solved plateau
  assert count_macs(build_spec(entry.r, entry.d, solution.value)) == target


def test_solve_width_picks_the_closest_step_and_reports_misses():
  # A budget between two steps of the staircase gets the nearer step.
  low = solve_width(0.8, 0.8, 60e6)
  below = count_macs(build_spec(0.8, 0.8, low.low - 1e-3))
  above = count_macs(build_spec(0.8, 0.8, low.high + 1e-3))
  assert below < low.macs < above
  assert abs(low.macs - 60e6) <= min(abs(below - 60e6), abs(above - 60e6))
  with pytest.raises(SpecError, match="no width"):
    solve_width(0.3, 0.3, 2e9, rtol=0.02)
  with pytest.raises(SpecError):
    solve_width(0.5, 0.5, -1)


@pytest.mark.parametrize("baseline, tinynet", [("efficientnet_b-1", "tinynet_b"), ("efficientnet_b-2", "tinynet_c"),
                                               ("efficientnet_b-3", "tinynet_d"), ("efficientnet_b-4", "tinynet_e")])
def test_zoo_phi_is_the_solved_one(baseline, tinynet):
  solution = solve_phi(count_macs(model_spec(tinynet)))
  assert solution.low <= ZOO[baseline].phi <= solution.high
  assert count_macs(model_spec(baseline)) == solution.macs
  assert abs(solution.relative_error) < 0.15  # the phi staircase is coarse; see the zoo's note


def _conv_and_dot_eqns(jaxpr):
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
      yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        if isinstance(sub, jax_core.ClosedJaxpr):
          yield from _conv_and_dot_eqns(sub.jaxpr)
        elif isinstance(sub, jax_core.Jaxpr):
          yield from _conv_and_dot_eqns(sub)


@pytest.mark.parametrize("name", ["tinynet_e", "efficientnet_b-4"])
def test_macs_match_xla_cost_analysis(name):
  """XLA's own count, op by op over the traced forward pass, equals our count minus the padding taps.

  XLA counts 2 flops per multiply-accumulate and skips taps that fall on zero padding; the paper (and thop)
  count every tap. The documented gap is therefore exactly `macs - valid_macs` (2.3% for TinyNet-E).
  """
  spec = model_spec(name)
  model = create_model(spec, depthwise_impl="xla")  # a real grouped conv, as the counter counts it
  x = jnp.zeros((1, spec.resolution, spec.resolution, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x))(variables, x)
  xla_flops, cache = 0.0, {}
  eqns = list(_conv_and_dot_eqns(jaxpr.jaxpr))
  for eqn in eqns:
    args = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in eqn.invars]
    key = (str(eqn.primitive), str(args), str(sorted(eqn.params.items())))
    if key not in cache:
      op = jax.jit(lambda *a, eqn=eqn: eqn.primitive.bind(*a, **eqn.params))
      cache[key] = op.lower(*args).compile().cost_analysis()["flops"]
    xla_flops += cache[key]
  layers = layer_costs(spec)
  assert len(eqns) == len(layers)
  assert xla_flops / 2 == sum(layer.valid_macs for layer in layers)
  gap = 1 - sum(layer.valid_macs for layer in layers) / count_macs(spec)
  assert 0 < gap < 0.05
  # The whole compiled forward pass also counts BN, activations and pooling: a few percent more.
  whole = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, x).compile().cost_analysis()["flops"]
  assert 1.0 < whole / 2 / count_macs(spec) < 1.15
