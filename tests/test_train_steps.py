"""The optimizer, schedule and the data-parallel train/eval steps (8 fake CPU devices, see conftest.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tinynet_jax as tj
from tinynet_jax.train import parallel, steps
from tinynet_jax.train.config import Duration
from tinynet_jax.train.optim import decay_mask, lr_at_epoch, rmsprop_tf, step_decay_schedule
from tinynet_jax.train.state import create_state

SPEC = tj.model_spec(r=0.15, d=0.3, w=0.25)  # 33 px, 7 blocks


def test_eight_devices():
  assert jax.device_count() == 8


@pytest.mark.parametrize("flat", [False, True])  # flat: the update on one raveled vector (flat_optimizer)
def test_rmsprop_tf_equals_timm_rmsproptf(flat):
  torch = pytest.importorskip("torch")
  from timm.optim import RMSpropTF
  rng = np.random.RandomState(0)
  init = {"w": rng.randn(4, 3).astype(np.float32), "b": rng.randn(3).astype(np.float32)}
  tx = rmsprop_tf(0.01, decay=0.9, momentum=0.9, eps=1e-3, weight_decay=1e-2, flat=flat)
  params = jax.tree.map(jnp.asarray, init)
  opt_state = tx.init(params)
  theirs = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
  # timm's add_weight_decay: no decay on 1-D tensors, as our decay_mask.
  opt = RMSpropTF([{"params": [theirs["w"]], "weight_decay": 1e-2}, {"params": [theirs["b"]], "weight_decay": 0}],
                  lr=0.01, alpha=0.9, eps=1e-3, momentum=0.9)
  for _ in range(6):
    grads = {k: rng.randn(*v.shape).astype(np.float32) for k, v in init.items()}
    updates, opt_state = tx.update(jax.tree.map(jnp.asarray, grads), opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    for key, tensor in theirs.items():
      tensor.grad = torch.tensor(grads[key])
    opt.step()
  for key in init:
    np.testing.assert_allclose(params[key], theirs[key].detach().numpy(), rtol=1e-5, atol=1e-7)


def test_weight_decay_skips_one_dimensional_params():
  mask = decay_mask({"conv": {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.ones(8)}, "bn": {"scale": jnp.ones(8)}})
  assert mask == {"conv": {"kernel": True, "bias": False}, "bn": {"scale": False}}


def test_schedule_matches_the_recipe_per_epoch():
  # MindSpore utils.get_lr / timm StepLRScheduler: 1e-6 + e*(lr-1e-6)/3 for e < 3, then lr*0.97**floor(e/2.4).
  lr = 0.048
  expected = {0: 1e-6, 1: 1e-6 + (lr - 1e-6) / 3, 2: 1e-6 + 2 * (lr - 1e-6) / 3, 3: lr * 0.97, 4: lr * 0.97,
              5: lr * 0.97 ** 2, 7: lr * 0.97 ** 2, 8: lr * 0.97 ** 3, 449: lr * 0.97 ** 187}
  kwargs = dict(base_lr=lr, warmup_epochs=3, warmup_lr=1e-6, decay_epochs=2.4, decay_rate=0.97)
  schedule = step_decay_schedule(base_lr=lr, warmup=Duration(3, 10), warmup_lr=1e-6, decay=Duration(2.4, 10),
                                 decay_rate=0.97)  # 10 steps per epoch
  for epoch, value in expected.items():
    assert lr_at_epoch(epoch, **kwargs) == pytest.approx(value, rel=1e-9)
    for step in (10 * epoch, 10 * epoch + 9):  # constant within an epoch
      assert float(schedule(step)) == pytest.approx(value, rel=1e-5)


def test_label_smoothing_forms():
  labels = jnp.array([1])
  exclusive = steps.smooth_labels(labels, 5, 0.1, exclusive=True)
  np.testing.assert_allclose(exclusive, [[0.025, 0.9, 0.025, 0.025, 0.025]], rtol=1e-6)
  timm_form = steps.smooth_labels(labels, 5, 0.1, exclusive=False)
  np.testing.assert_allclose(timm_form, [[0.02, 0.92, 0.02, 0.02, 0.02]], rtol=1e-6)


def _train(num_devices, sync_bn, num_steps=3, batch_size=16, bn_group_size=None, spec=SPEC, variables=None):
  mesh = jax.make_mesh((num_devices,), (steps.AXIS,), axis_types=(jax.sharding.AxisType.Explicit,),
                       devices=jax.devices()[:num_devices])
  # No dropout: its masks are drawn per replica, so they depend on the device layout. The BN arguments are
  # the engine's (`train.engine.create_engine`).
  model = tj.create_model(spec, 10, bn_axis_name=steps.AXIS if sync_bn or bn_group_size else None,
                          bn_group_size=bn_group_size)
  tx = rmsprop_tf(0.01, weight_decay=1e-5)
  res = spec.resolution
  if variables is None:
    variables = jax.jit(tj.create_model(spec, 10).init)(jax.random.key(0), jnp.zeros((1, res, res, 3)))
  state = parallel.replicate(mesh, create_state(variables, tx))
  step = parallel.shard_step(steps.train_step, mesh, donate_state=True, model=model, tx=tx,
                             keys={"dropout": jax.random.key(1)}, num_classes=10, label_smoothing=0.1,
                             exclusive_smoothing=True, ema_decay=0.9)
  rng = np.random.RandomState(0)
  for _ in range(num_steps):
    batch = {"image": rng.randn(batch_size, res, res, 3).astype(np.float32),
             "label": rng.randint(0, 10, batch_size).astype(np.int32)}
    state, metrics = step(state, parallel.global_batch(mesh, batch))
  return jax.tree.map(np.asarray, state), {k: float(v) for k, v in metrics.compute().items()}


@pytest.fixture(scope="module")
def one_device():
  return _train(1, sync_bn=True)


def test_sharded_step_equals_single_device_step_with_cross_replica_bn(one_device):
  single, single_metrics = one_device
  sharded, sharded_metrics = _train(8, sync_bn=True)
  assert int(sharded.step) == 3
  for ours, theirs in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-6)
  assert sharded_metrics == pytest.approx(single_metrics, rel=1e-5)


def test_per_replica_bn_differs_but_stays_replicated(one_device):
  single, _ = one_device
  local, _ = _train(8, sync_bn=False)
  bn_mean = lambda s: s.batch_stats["bn1"]["mean"]  # noqa: E731
  assert not np.allclose(bn_mean(local), bn_mean(single), rtol=1e-3)
  assert np.isfinite(bn_mean(local)).all()


# BN groups: five one-step runs, a compile each (~5 CPU s on XLA:CPU), of a network with 4 BatchNorms (stem,
# a residual ds block with SE, head) at 12 px, from one set of variables (`init_variables` compiles far faster
# than `model.init`).
BN_SPEC = tj.build_spec(1.0, 1.0, 0.25, rules="efficientnet", resolution=12, arch=(("ds_r1_k3_s1_e1_c16_se0.25",),))


@pytest.fixture(scope="module")
def bn_step():
  """(devices, global batch, bn_group_size) -> one train step's (state, metrics), per-replica BN when None."""
  from tinynet_jax.models import init_variables
  res = BN_SPEC.resolution
  variables = jax.jit(lambda key: init_variables(tj.create_model(BN_SPEC, 10), key, jnp.zeros((1, res, res, 3))))(
      jax.random.key(0))
  variables = jax.tree.map(np.asarray, variables)  # host copies: each run's state is donated to its step
  return lambda devices, batch_size, group=None: _train(devices, False, 1, batch_size, group, BN_SPEC, variables)


def _assert_same_step(ours, theirs):
  """Every leaf of the new state (params, BN statistics, their EMAs) and the metrics agree to float32 rounding;
  returns the largest absolute difference."""
  (state, metrics), (other, other_metrics) = ours, theirs
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(other)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert metrics == pytest.approx(other_metrics, rel=1e-5)
  return max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(other)))


@pytest.fixture(scope="module")
def per_replica_8x4(bn_step):
  """The reference's layout (8 GPUs x 128, per-replica BN) scaled down to 8 devices x 4."""
  return bn_step(8, 32)


def test_bn_groups_of_one_replica_batch_are_per_replica_bn(bn_step, per_replica_8x4):
  _assert_same_step(bn_step(8, 32, 4), per_replica_8x4)


def test_bn_groups_reproduce_eight_replicas_on_one_device(bn_step, per_replica_8x4):
  """1 device x 32 in 8 groups of 4 takes the step of 8 devices x 4 with per-replica BN: the same
  normalisation, gradients and running statistics (the mean over the groups = the replicas' pmean)."""
  _assert_same_step(bn_step(1, 32, 4), per_replica_8x4)


def test_bn_groups_spanning_two_devices_are_per_replica_bn_on_half_the_devices(bn_step):
  """8 devices x 2 in groups of 4 (two consecutive devices each) = 4 devices x 4 with per-replica BN."""
  _assert_same_step(bn_step(8, 16, 4), bn_step(4, 16))


def test_eval_step_counts_masked_examples_once():
  mesh = parallel.make_mesh()
  model = tj.create_model(SPEC, 10)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 33, 33, 3)))
  state = parallel.replicate(mesh, create_state(variables, rmsprop_tf(0.01)))
  evaluate = parallel.shard_step(steps.eval_step, mesh, donate_state=False, model=model, num_classes=10)
  rng = np.random.RandomState(0)
  images = rng.randn(16, 33, 33, 3).astype(np.float32)
  labels = rng.randint(0, 10, 16).astype(np.int32)
  mask = np.array([1.0] * 11 + [0.0] * 5, np.float32)
  metrics = evaluate(state, parallel.global_batch(mesh, {"image": images, "label": labels, "mask": mask}))
  logits = np.asarray(jax.jit(model.apply)(variables, images))
  top1 = (logits.argmax(-1) == labels)[:11].mean()
  top5 = np.any(np.argsort(-logits, -1)[:, :5] == labels[:, None], -1)[:11].mean()
  result = metrics.compute()
  assert float(metrics.top1.count) == 11
  assert float(result["top1"]) == pytest.approx(top1) and float(result["top5"]) == pytest.approx(top5)
  assert float(result["ema_top1"]) == pytest.approx(top1)  # EMA starts equal to the params


def test_seeds_share_one_program_and_engines_share_its_compilation():
  """The PRNG keys are arguments of the steps, not constants: two seeds of a network lower to the same program
  (so the persistent compilation cache serves a replicate), and an engine of the same program key takes the
  compiled step from the process's memo instead of tracing it again."""
  from tinynet_jax.train.benchmark import benchmark_config
  from tinynet_jax.train.config import model_spec_from_config, schedule_lengths
  from tinynet_jax.train.engine import create_engine
  mesh = parallel.make_mesh()

  def engine(seed, **fields):
    config = benchmark_config("tinynet_e", "train", batch=8, resolution=24)
    config.seed = seed
    config.update(fields)
    return create_engine(config, model_spec_from_config(config), 10, mesh, lengths=schedule_lengths(config, 64))

  first, second, other = engine(0), engine(1), engine(0, label_smoothing=0.2)
  assert first.program_key == second.program_key != other.program_key
  text = lambda e: e.train_step.lower(e.abstract_state, e.train_batch).as_text()  # noqa: E731
  assert text(first) == text(second)
  assert first.program("eval") is second.program("eval")  # compiled once
  assert other.program("eval") is not first.program("eval")
  init_0, init_1 = first.program("init")(), second.program("init")()  # one init program, each with its seed
  assert not np.array_equal(init_0.params["classifier"]["kernel"], init_1.params["classifier"]["kernel"])


def test_the_engine_builds_bn_groups_from_the_config():
  """bn_group_size reaches every BatchNorm with the 'data' axis (for groups spanning devices); a workdir's
  config.json from before the field existed (evaluation builds its engine from it) means per-replica BN."""
  import ml_collections
  from tinynet_jax.train.benchmark import benchmark_config
  from tinynet_jax.train.engine import create_engine
  mesh = parallel.make_mesh()
  config = benchmark_config("tinynet_e", "train", batch=64, resolution=24)
  config.bn_group_size = 16
  model = create_engine(config, BN_SPEC, 10, mesh).model
  assert (model.bn_group_size, model.bn_axis_name) == (16, steps.AXIS)
  old = ml_collections.ConfigDict({k: v for k, v in config.to_dict().items() if k != "bn_group_size"})
  model = create_engine(old, BN_SPEC, 10, mesh).model
  assert (model.bn_group_size, model.bn_axis_name) == (None, None)
