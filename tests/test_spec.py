"""The spec layer: grammar, rounding rules, zoo shapes (golden tables from ../shared/reference/tinynet.md,
re-derived there from timm's builder and the official tinynet.py), validation."""
import json
import math

import numpy as np
import pytest

from tinynet_jax.errors import SpecError
from tinynet_jax.arch import (EFFICIENTNET_B0_ARCH, ZOO, BlockDef, ModelSpec, build_spec, format_block,
                              make_divisible, model_spec, parse_block, round_channels, scale_stage_depth)

# tinynet.md §2.2 (per-stage repeats and output channels); §2.1 (input = int(224 r)).
STAGE_TABLE = {
    "efficientnet_b0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320), 224),
    "tinynet_a": ((1, 2, 2, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320), 192),
    "tinynet_b": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 32, 64, 88, 144, 240), 188),
    "tinynet_c": ((1, 2, 2, 3, 3, 3, 1), (8, 16, 24, 40, 64, 104, 176), 184),
    "tinynet_d": ((1, 1, 1, 2, 2, 3, 1), (8, 16, 24, 40, 64, 104, 176), 152),
    "tinynet_e": ((1, 1, 1, 2, 2, 2, 1), (8, 16, 24, 40, 56, 96, 160), 106),
}


@pytest.mark.parametrize("name", sorted(STAGE_TABLE))
def test_zoo_stage_table(name):
  depths, widths, resolution = STAGE_TABLE[name]
  spec = model_spec(name)
  assert spec.depths == depths
  assert spec.widths == widths
  assert spec.resolution == resolution
  assert spec.stem_channels == 32 and spec.head_channels == 1280


def test_tinynet_e_block_details():
  # tinynet.md §2.2 example: mid and SE channels of TinyNet-E's first block per stage.
  spec = model_spec("tinynet_e")
  firsts = [(s[0].in_channels, s[0].out_channels, s[0].mid_channels, s[0].se_channels) for s in spec.stages]
  assert firsts == [(32, 8, 32, 8), (8, 16, 48, 2), (16, 24, 96, 4), (24, 40, 144, 6), (40, 56, 240, 10),
                    (56, 96, 336, 14), (96, 160, 576, 24)]
  assert not any(b.has_residual for b in (s[0] for s in spec.stages[:4]))  # 32->8 and strided blocks
  assert spec.stages[3][1].has_residual


def test_make_divisible_examples():
  # tinynet.md §3.3: w = 0.75 maps 16,24,40,80,112,192,320 to 16,24,32,64,88,144,240 (18 -> 16 < 0.9*18 -> 24).
  assert [round_channels(c, 0.75) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 32, 64, 88, 144, 240]
  assert make_divisible(18) == 24 and make_divisible(20) == 24 and make_divisible(3) == 8
  assert round_channels(32, 0) == 32


def test_make_divisible_is_monotone():
  values = [make_divisible(v / 10) for v in range(1, 5000)]
  assert values == sorted(values)
  assert all(v % 8 == 0 and v >= 8 for v in values)


def test_scale_stage_depth_rules():
  assert scale_stage_depth([2], 1.25, "round") == [2]  # round(2.5) = 2: Python's half-to-even
  assert scale_stage_depth([3], 0.5, "round") == [2]  # round(1.5) = 2
  assert scale_stage_depth([1], 0.1, "round") == [1]  # at least one block
  assert scale_stage_depth([4], 1.2, "round") == [5]
  assert scale_stage_depth([2], 1.01, "ceil") == [3]
  assert scale_stage_depth([1, 2], 2.0, "round") == [2, 4]  # shared back last def first
  with pytest.raises(ValueError):
    scale_stage_depth([1], 1.0, "floor")


def test_block_grammar_round_trip():
  for stage in EFFICIENTNET_B0_ARCH:
    for text in stage:
      assert format_block(parse_block(text)) == text
  block = parse_block("ir_r3_k5_s2_e4.5_c40_se0.25_noskip")
  assert block == BlockDef("ir", 3, 5, 2, 4.5, 40, 0.25, skip=False)
  assert str(block) == "ir_r3_k5_s2_e4.5_c40_se0.25_noskip"


@pytest.mark.parametrize("text", ["", "xx_r1_k3_s1_c16", "ir_r1_k3_s1_c16", "ds_r0_k3_s1_c16",
                                  "ds_r1_k3_s1_c16_q5", "ds_r1_k3_s1_c16_c8", "ds_r1.5_k3_s1_c16",
                                  "ds_r1_k3_s1_e6_c16"])
def test_block_grammar_errors(text):
  with pytest.raises(SpecError):
    parse_block(text)


def test_spec_is_a_printable_hashable_value():
  spec = model_spec("tinynet_c")
  unnamed = model_spec(r=0.825, d=0.85, w=0.54)
  assert unnamed.stages == spec.stages and unnamed != spec  # same network; the name is part of the value
  assert hash(spec) == hash(model_spec("tinynet_c"))
  assert len({spec, model_spec("tinynet_c"), model_spec("tinynet_d")}) == 2
  text = str(spec)
  assert "tinynet_c" in text and "input=184px" in text and "stage 6" in text
  restored = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
  assert restored == spec
  assert spec.with_resolution(96).resolution == 96 and spec.with_resolution(96).stages == spec.stages


def test_custom_points_and_rules():
  spec = model_spec(r=0.7, d=0.9, w=0.6)
  assert (spec.rules, spec.resolution, spec.stem_channels) == ("tinynet", 156, 32)
  eff = model_spec(r=0.7, d=0.9, w=0.6, rules="efficientnet")
  assert eff.stem_channels == make_divisible(32 * 0.6) and eff.head_channels == make_divisible(1280 * 0.6)
  assert eff.depths == tuple(math.ceil(n * 0.9) for n in (1, 2, 2, 3, 3, 4, 1))
  assert model_spec(w=0.5).resolution == 224  # unspecified knobs stay at B0's 1.0
  assert model_spec("tinynet_a", base_resolution=112).resolution == int(112 * 0.86)
  assert model_spec("tinynet_a", resolution=64).resolution == 64
  giant = model_spec(phi=-1.0)
  assert giant.rules == "efficientnet" and giant.resolution == int(224 * 1.15 ** -1)
  assert ZOO["efficientnet_b-4"].phi < ZOO["efficientnet_b-1"].phi < 0


@pytest.mark.parametrize("kwargs", [
    dict(r=0), dict(d=-1), dict(w=float("nan")), dict(r=float("inf")), dict(w=True), dict(r="0.5"),
    dict(r=0.5, resolution=0), dict(r=0.5, resolution=1.5), dict(r=0.5, base_resolution=-1),
    dict(r=0.001), dict(r=0.5, rules="mobilenet"), dict(), dict(phi=float("nan")), dict(phi=-1, w=0.5),
])
def test_invalid_points(kwargs):
  with pytest.raises(SpecError):
    model_spec(**kwargs)


def test_one_resolution_check_with_the_callers_error():
  from tinynet_jax.arch import check_resolution
  from tinynet_jax.errors import DataError
  assert check_resolution(np.int64(96)) == 96 and type(check_resolution(np.int64(96))) is int
  for bad in (0, -3, 1.5, True, "96", None):
    with pytest.raises(SpecError, match="resolution must be a positive integer"):
      check_resolution(bad)
  with pytest.raises(DataError, match="size must be a positive integer, got 0"):
    check_resolution(0, "size", error=DataError)


def test_invalid_names():
  with pytest.raises(SpecError, match="did you mean 'tinynet_a'"):
    model_spec("tinynet-a")
  with pytest.raises(SpecError, match="not both"):
    model_spec("tinynet_a", r=0.5)
  with pytest.raises(SpecError):
    build_spec(0.5, 0.5, 0.5, arch=[])
