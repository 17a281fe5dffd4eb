"""Live cross-checks against timm (the maintained port that loads the official TinyNet checkpoints).

Skipped only where torch/timm are not installed (CI installs them: requirements.txt).
"""
import random

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
from timm.models import _efficientnet_builder as timm_builder  # noqa: E402
from timm.models.efficientnet import _gen_efficientnet, _gen_tinynet  # noqa: E402

from tinynet_jax import count_params, create_model, model_spec  # noqa: E402
from tinynet_jax.checkpoints import abstract_variables, export_state_dict, import_state_dict  # noqa: E402
from tinynet_jax.errors import CheckpointError  # noqa: E402
from tinynet_jax.arch import ZOO, make_divisible, scale_stage_depth  # noqa: E402

_rng = random.Random(2020)
RANDOM_POINTS = [dict(r=round(_rng.uniform(0.25, 0.6), 3), d=round(_rng.uniform(0.2, 1.6), 3),
                      w=round(_rng.uniform(0.2, 1.4), 3), rules=rules)
                 for rules in ("tinynet", "efficientnet") for _ in range(3)]
SPECS = [model_spec(name) for name in ZOO] + [model_spec(**point) for point in RANDOM_POINTS]


def timm_model(spec):
  """timm's own generator for the spec's (d, w) and rules, randomly initialised (no download)."""
  torch.manual_seed(0)
  if spec.rules == "tinynet":
    model = _gen_tinynet("tinynet_a", spec.w, spec.d, pretrained=False)
  else:
    model = _gen_efficientnet("efficientnet_b0", spec.w, spec.d, pretrained=False)
  return model.eval()


def randomise_batchnorm(model):
  """Non-trivial BN statistics and affine params, so that a mis-mapped BN tensor cannot go unnoticed."""
  generator = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        n = module.num_features
        module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
        module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
        module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
        module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
  return model


def numpy_state_dict(model):
  return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def test_rounding_rules_equal_timm():
  rng = random.Random(0)
  for _ in range(2000):
    value = rng.uniform(0.5, 2000)
    assert make_divisible(value) == timm.layers.make_divisible(value)
  for _ in range(500):
    repeats = [rng.randint(1, 5) for _ in range(rng.randint(1, 3))]
    multiplier = rng.uniform(0.05, 3.0)
    for trunc in ("round", "ceil"):
      counts = [len(x) for x in _split_counts(repeats, multiplier, trunc)]
      assert scale_stage_depth(repeats, multiplier, trunc) == counts


def _split_counts(repeats, multiplier, trunc):
  # timm returns the expanded block list; tag each def to count how many copies it got.
  scaled = timm_builder._scale_stage_depth([{"i": i} for i in range(len(repeats))], repeats, multiplier, trunc)
  return [[b for b in scaled if b["i"] == i] for i in range(len(repeats))]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_param_counts_equal_timm(spec):
  model = timm_model(spec)
  assert count_params(spec) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
def test_ported_logits_equal_timm(spec):
  reference = randomise_batchnorm(timm_model(spec))
  model = create_model(spec)
  variables = import_state_dict(numpy_state_dict(reference), abstract_variables(model))
  images = np.random.RandomState(0).randn(2, spec.resolution, spec.resolution, 3).astype(np.float32)
  with torch.no_grad():
    expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
  logits = np.asarray(jax.jit(model.apply)(variables, images))
  assert np.abs(logits - expected).max() <= 1e-4 * (1 + np.abs(expected).max())


def test_export_loads_into_timm_strictly():
  spec = model_spec("tinynet_e")
  reference = randomise_batchnorm(timm_model(spec))
  variables = import_state_dict(numpy_state_dict(reference), abstract_variables(create_model(spec)))
  fresh = timm_model(spec)
  exported = {k: torch.from_numpy(v) for k, v in export_state_dict(variables).items()}
  missing, unexpected = fresh.load_state_dict(exported, strict=False)
  assert unexpected == [] and all(k.endswith("num_batches_tracked") for k in missing)
  for key, value in reference.state_dict().items():
    if not key.endswith("num_batches_tracked"):
      assert torch.equal(fresh.state_dict()[key], value), key


def test_import_is_strict_and_lists_every_problem():
  spec = model_spec("tinynet_e")
  target = abstract_variables(create_model(spec))
  state = numpy_state_dict(timm_model(spec))
  state.pop("blocks.3.1.conv_dw.weight")
  state.pop("bn2.running_var")
  state["blocks.9.0.conv_pw.weight"] = np.zeros((8, 8, 1, 1), np.float32)
  state["classifier.weight"] = np.zeros((10, 1280), np.float32)
  with pytest.raises(CheckpointError) as error:
    import_state_dict(state, target)
  message = str(error.value)
  for expected in ("missing 2", "blocks.3.1.conv_dw.weight", "bn2.running_var", "unexpected 1",
                   "blocks.9.0.conv_pw.weight", "wrong shape 1", "classifier.weight (10, 1280)",
                   "(model needs (1000, 1280))"):
    assert expected in message
  assert "num_batches_tracked" not in message  # BN counters are ignored, not reported
