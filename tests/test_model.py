"""The Flax model: structure from the spec, dtypes, train/eval behaviour, init, features."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from tinynet_jax import count_params, create_model, model_spec
from tinynet_jax.costs import conv_output_size
from tinynet_jax.arch import ZOO

RANDOM_POINTS = [dict(r=0.31, d=0.27, w=0.23), dict(r=0.55, d=1.37, w=0.81),
                 dict(r=0.62, d=0.43, w=1.3, rules="efficientnet"), dict(r=0.4, d=0.77, w=0.35, rules="efficientnet")]


def _init(spec, num_classes=1000, **kwargs):
  model = create_model(spec, num_classes, **kwargs)
  x = jnp.zeros((2, spec.resolution, spec.resolution, 3))
  return model, jax.jit(model.init)(jax.random.key(0), x)


@pytest.fixture(scope="module")
def small():
  """One small initialised network shared by the tests below (init compiles slowly on XLA:CPU)."""
  spec = model_spec(r=0.3, d=0.5, w=0.25)  # 67 px, 11 blocks
  model, variables = _init(spec, num_classes=10)
  return spec, model, variables


def _apply(model, variables, x, **kwargs):
  """Jitted apply (eager op-by-op dispatch is slow on CPU); train mode returns (out, batch_stats)."""
  if kwargs.get("train"):
    kwargs["mutable"] = ["batch_stats"]
  rngs = kwargs.pop("rngs", None)
  return jax.jit(lambda v, x, rngs: model.apply(v, x, rngs=rngs, **kwargs))(variables, x, rngs)


@pytest.mark.parametrize("spec", [model_spec(n) for n in ZOO] + [model_spec(**p) for p in RANDOM_POINTS],
                         ids=lambda s: s.label)
def test_param_count_equals_the_counter(spec):
  model = create_model(spec)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert sum(x.size for x in jax.tree.leaves(variables["params"])) == count_params(spec)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))


def test_forward_shapes_and_features(small):
  spec, model, variables = small
  x = jax.random.normal(jax.random.key(1), (2, spec.resolution, spec.resolution, 3))
  logits, features = _apply(model, variables, x, return_features=True)
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32
  size = conv_output_size(spec.resolution, 3, 2)
  assert features["stem"].shape == (2, size, size, spec.stem_channels)
  for index, stage in enumerate(spec.stages):
    for block in stage:
      size = conv_output_size(size, block.kernel, block.stride)
    assert features[f"stage{index}"].shape == (2, size, size, stage[-1].out_channels)
  assert features["head"].shape == (2, size, size, spec.head_channels)
  np.testing.assert_allclose(features["pooled"], features["head"].mean((1, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(_apply(model, variables, x), logits)
  # `classify` is the network after the head (what Grad-CAM differentiates): the same logits from the head.
  head_logits = jax.jit(lambda v, f: model.apply(v, f, method="classify"))(variables, features["head"])
  np.testing.assert_array_equal(head_logits, logits)
  names = {path[:2] for path in traverse_util.flatten_dict(variables["params"])}
  assert ("classifier", "kernel") in names and ("classifier", "bias") in names  # timm's names, at the top


def test_headless_model_returns_pooled_features(small):
  spec, model, variables = small
  headless = create_model(spec, num_classes=0)
  assert "classifier" not in jax.eval_shape(headless.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  x = jax.random.normal(jax.random.key(5), (2, spec.resolution, spec.resolution, 3))
  trunk = {"params": {k: v for k, v in variables["params"].items() if k != "classifier"},
           "batch_stats": variables["batch_stats"]}
  out = _apply(headless, trunk, x)
  assert out.shape == (2, spec.head_channels)
  np.testing.assert_allclose(out, _apply(model, variables, x, return_features=True)[1]["pooled"], rtol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_logits(small):
  spec, _, variables = small
  x = jax.random.normal(jax.random.key(2), (2, spec.resolution, spec.resolution, 3))
  f32 = _apply(create_model(spec, 10), variables, x)
  bf16_model = create_model(spec, 10, dtype=jnp.bfloat16)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(
      jax.eval_shape(lambda: bf16_model.init(jax.random.key(0), x))))
  bf16, state = _apply(bf16_model, variables, x, train=True)
  assert bf16.dtype == jnp.float32
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(state))
  out = _apply(bf16_model, variables, x)
  np.testing.assert_allclose(out, f32, atol=0.1 * float(jnp.abs(f32).max()) + 0.05)


def test_train_mode_updates_batch_stats_with_pytorch_momentum(small):
  spec, model, variables = small
  x = 3.0 + jax.random.normal(jax.random.key(3), (4, spec.resolution, spec.resolution, 3))
  _, state = _apply(model, variables, x, train=True)
  # The stem conv has no bias and BN starts at mean 0: new mean = 0.1 * batch mean (PyTorch momentum 0.1).
  stem = model.apply(variables, x, method=lambda m, x: jax.lax.conv_general_dilated(
      x, m.variables["params"]["conv_stem"]["kernel"], (2, 2), ((1, 1), (1, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC")))
  np.testing.assert_allclose(state["batch_stats"]["bn1"]["mean"], 0.1 * stem.mean((0, 1, 2)), rtol=1e-4,
                             atol=1e-5)


def test_dropout_and_drop_path_only_in_training(small):
  spec, _, variables = small
  model = create_model(spec, 10, drop_rate=0.5, drop_path_rate=0.5)
  x = jax.random.normal(jax.random.key(4), (2, spec.resolution, spec.resolution, 3))
  assert np.array_equal(_apply(model, variables, x), _apply(model, variables, x))
  train = jax.jit(lambda seed: model.apply(variables, x, train=True, mutable=["batch_stats"],
                                           rngs={"dropout": jax.random.key(seed)})[0])
  assert not np.allclose(train(0), train(1))
  assert np.array_equal(train(0), train(0))
  plain = _apply(create_model(spec, 10), variables, x, train=True)[0]  # no rng needed without dropout
  assert np.isfinite(plain).all() and not np.allclose(plain, train(0))


def test_drop_path_rate_rises_linearly():
  import flax.linen as nn
  from tinynet_jax.models import Block

  spec = model_spec("tinynet_e")
  model = create_model(spec, drop_path_rate=0.2)
  rates = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, Block) and context.method_name == "__call__":
      rates.append(context.module.drop_path_rate)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  total = len(spec.blocks)
  assert rates == pytest.approx([0.2 * i / total for i in range(total)])


def test_init_follows_timm_goog_init():
  from tinynet_jax.models import Block
  from tinynet_jax.models.layers import dense_kernel_init

  block = model_spec("tinynet_e").stages[5][0]  # ir k5, 56 -> 96, mid 336
  x = jnp.zeros((1, 8, 8, block.in_channels))
  params = jax.jit(lambda: Block(block).init(jax.random.key(0), x)["params"])()
  flat = traverse_util.flatten_dict(params, sep="/")
  # 5x5 depthwise: fan_out = k*k = 25 (Flax's variance_scaling would use k*k*C).
  assert np.std(flat["conv_dw/kernel"]) == pytest.approx(math.sqrt(2 / 25), rel=0.05)
  assert np.std(flat["conv_pwl/kernel"]) == pytest.approx(math.sqrt(2 / block.out_channels), rel=0.05)
  assert np.std(flat["se/conv_reduce/kernel"]) == pytest.approx(math.sqrt(2 / block.se_channels), rel=0.1)
  assert not np.any(flat["se/conv_reduce/bias"]) and np.all(flat["bn2/scale"] == 1)
  fc = dense_kernel_init(jax.random.key(1), (1280, 1000))  # U(+-1/sqrt(fan_out)), timm's for ImageNet's head
  assert 0.99 / math.sqrt(1000) < np.abs(fc).max() <= 1 / math.sqrt(1000)
  fc = dense_kernel_init(jax.random.key(1), (1280, 2000))
  assert 0.99 / math.sqrt(2000) < np.abs(fc).max() <= 1 / math.sqrt(2000)
  # Small heads keep ImageNet's scale (timm's rule would give +-1/sqrt(10) = 0.32).
  fc = dense_kernel_init(jax.random.key(1), (1280, 10))
  assert 0.99 / math.sqrt(1000) < np.abs(fc).max() <= 1 / math.sqrt(1000)


def test_small_head_starts_near_uniform_predictions(small):
  """A fresh 10-class network's cross-entropy is close to ln 10 (timm's init gave 5.8 on the demo's digits)."""
  spec, model, variables = small
  images = jax.random.normal(jax.random.key(2), (32, spec.resolution, spec.resolution, 3))
  logits, _ = _apply(model, variables, images, train=True)
  labels = jax.random.randint(jax.random.key(3), (32,), 0, 10)
  loss = float(jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, labels[:, None], -1)[:, 0]))
  assert math.log(10) <= loss < math.log(10) + 0.15


def test_pooled_init_has_the_same_structure_and_distributions_from_two_draws():
  """`init_variables`: every parameter from one normal and one uniform vector, same laws as `init`."""
  from tinynet_jax.models import init_variables

  spec = model_spec(r=0.2, d=0.3, w=0.5)
  model = create_model(spec, 10)
  x = jnp.zeros((1, spec.resolution, spec.resolution, 3))
  pooled = jax.jit(lambda k: init_variables(model, k, x))(jax.random.key(0))
  plain = jax.jit(model.init)(jax.random.key(0), x)
  assert jax.tree.structure(pooled) == jax.tree.structure(plain)
  assert all(a.shape == b.shape and a.dtype == b.dtype
             for a, b in zip(jax.tree.leaves(pooled), jax.tree.leaves(plain)))
  flat = traverse_util.flatten_dict(pooled["params"], sep="/")
  kernels = {k: v for k, v in flat.items() if k.endswith("kernel") and v.ndim == 4 and v.size >= 2000}
  assert len(kernels) > 5
  for name, kernel in kernels.items():
    kh, kw, cin, cout = kernel.shape
    fan_out = kh * kw * (1 if cin == 1 else cout)  # depthwise kernels (k, k, 1, C) count k*k
    assert np.std(kernel) == pytest.approx(math.sqrt(2 / fan_out), rel=0.15), name
  fc = flat["classifier/kernel"]
  assert np.abs(fc).max() <= 1 / math.sqrt(1000) and np.std(fc) == pytest.approx(1 / math.sqrt(3000), rel=0.15)
  # Independent draws: no two kernels share values, and the seed matters but nothing else does.
  values = [np.asarray(v).ravel()[:50] for v in kernels.values()]
  assert len({v.tobytes() for v in values}) == len(values)
  again = jax.jit(lambda k: init_variables(model, k, x))(jax.random.key(0))
  other = jax.jit(lambda k: init_variables(model, k, x))(jax.random.key(1))
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(pooled)))
  assert not np.array_equal(other["params"]["classifier"]["kernel"], fc)


def test_create_model_rejects_bad_arguments():
  with pytest.raises(TypeError):
    create_model("tinynet_a")
  with pytest.raises(ValueError):
    create_model(model_spec("tinynet_a"), num_classes=-1)


def test_bn_axis_name_syncs_statistics_across_replicas(small):
  spec, _, variables = small
  synced = create_model(spec, 10, bn_axis_name="replicas")
  x = jax.random.normal(jax.random.key(6), (4, spec.resolution, spec.resolution, 3))
  x = x + jnp.arange(4.0)[:, None, None, None]  # replicas see different data
  per_replica = lambda model: jax.jit(jax.vmap(  # noqa: E731
      lambda xs: model.apply(variables, xs, train=True, mutable=["batch_stats"])[1],
      axis_name="replicas"))(x.reshape(2, 2, *x.shape[1:]))
  full_batch = _apply(create_model(spec, 10), variables, x, train=True)[1]
  synced_stats = per_replica(synced)
  local_stats = per_replica(create_model(spec, 10))
  mean = lambda tree: tree["batch_stats"]["bn1"]["mean"]  # noqa: E731
  np.testing.assert_allclose(mean(synced_stats)[0], mean(full_batch), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(mean(synced_stats)[1], mean(full_batch), rtol=1e-5, atol=1e-6)
  assert not np.allclose(mean(local_stats)[0], mean(local_stats)[1])


@pytest.mark.parametrize("kernel, stride, size", [(3, 1, 9), (3, 2, 9), (5, 2, 10), (5, 1, 7), (3, 2, 1)])
def test_shift_depthwise_equals_the_grouped_conv_with_the_same_parameters(kernel, stride, size):
  """'shift' (sum of strided slices, fast on XLA:CPU) and 'xla' (grouped conv): same params, same values and
  gradients to float tolerance, for odd and even sizes, strides 1 and 2, and a 1x1 input."""
  from tinynet_jax.models.layers import DepthwiseConv
  x = jax.random.normal(jax.random.key(1), (2, size, size, 6))
  xla, shift = (DepthwiseConv(6, kernel, stride, impl=impl) for impl in ("xla", "shift"))
  params = xla.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, shift.init(jax.random.key(0), x))
  assert params["params"]["kernel"].shape == (kernel, kernel, 1, 6)  # nn.Conv's layout: timm weights port as is
  out_xla, out_shift = xla.apply(params, x), shift.apply(params, x)
  assert out_xla.shape == out_shift.shape == (2, conv_output_size(size, kernel, stride),
                                              conv_output_size(size, kernel, stride), 6)
  np.testing.assert_allclose(out_shift, out_xla, rtol=1e-5, atol=1e-5)
  grads = [jax.grad(lambda p, m=m: jnp.sum(jnp.sin(m.apply(p, x))))(params) for m in (xla, shift)]
  np.testing.assert_allclose(grads[1]["params"]["kernel"], grads[0]["params"]["kernel"], rtol=1e-4, atol=1e-4)



def _bn_variables(channels, seed=0):
  """BN variables away from their init (scale 1, bias 0, mean 0, var 1), so that every one matters."""
  rng = np.random.RandomState(seed)
  return {"params": {"scale": 1 + 0.5 * rng.randn(channels).astype(np.float32),
                     "bias": rng.randn(channels).astype(np.float32)},
          "batch_stats": {"mean": rng.randn(channels).astype(np.float32),
                          "var": 1 + rng.rand(channels).astype(np.float32)}}


@pytest.mark.parametrize("dtype, train", [(jnp.float32, True), (jnp.bfloat16, True), (jnp.float32, False)],
                         ids=["float32-train", "bfloat16-train", "float32-eval"])
def test_one_bn_group_per_replica_is_exactly_nn_batchnorm(dtype, train):
  """bn_group_size = the replica batch: nn.BatchNorm's variables (ported weights, checkpoints), outputs and
  running-statistic updates, bit for bit."""
  from tinynet_jax.models.layers import GroupedBatchNorm, batch_norm
  x = jnp.asarray(2 + 3 * np.random.RandomState(1).randn(8, 5, 5, 6), dtype)
  plain, grouped = batch_norm(train, dtype, None, "bn"), batch_norm(train, dtype, None, "bn", group_size=8)
  assert isinstance(grouped, GroupedBatchNorm)
  variables = lambda m: jax.eval_shape(m.init, jax.random.key(0), x)  # noqa: E731
  assert jax.tree.map(lambda a: (a.shape, a.dtype), variables(grouped)) == \
      jax.tree.map(lambda a: (a.shape, a.dtype), variables(plain))
  apply = lambda m: jax.jit(lambda v, x: m.apply(v, x, mutable=["batch_stats"]))(_bn_variables(6), x)  # noqa: E731
  for ours, theirs in zip(jax.tree.leaves(apply(grouped)), jax.tree.leaves(apply(plain))):
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_bn_groups_keep_the_network_variables():
  """Same variable tree (names, shapes, dtypes) with bn_group_size: ported timm weights and checkpoints load."""
  spec = model_spec("tinynet_e")
  tree = lambda model: jax.tree.map(lambda a: (a.shape, a.dtype), jax.eval_shape(  # noqa: E731
      lambda key: model.init(key, jnp.zeros((8, 32, 32, 3)), train=True), jax.random.key(0)))
  assert tree(create_model(spec, bn_group_size=4, bn_axis_name="data")) == tree(create_model(spec))


def _bn_apply(module, variables, x):
  return jax.jit(lambda v, x: module.apply(v, x, mutable=["batch_stats"]))(variables, x)


def test_bn_groups_within_a_replica_batch_are_ghost_batch_norm():
  """Groups of 2 in a batch of 8: each group normalised as nn.BatchNorm on it alone; the running statistics move
  towards the groups' mean statistics (what averaging 4 replicas' nn.BatchNorm updates gives)."""
  from tinynet_jax.models.layers import batch_norm
  x = jnp.asarray(np.random.RandomState(2).randn(8, 3, 3, 4) + np.arange(8.0)[:, None, None, None], jnp.float32)
  variables = _bn_variables(4)
  y, stats = _bn_apply(batch_norm(True, jnp.float32, None, "bn", group_size=2), variables, x)
  plain = batch_norm(True, jnp.float32, None, "bn")
  out, expected = jax.jit(jax.vmap(lambda xs: plain.apply(variables, xs, mutable=["batch_stats"])))(
      x.reshape(4, 2, 3, 3, 4))  # nn.BatchNorm on each group alone
  np.testing.assert_allclose(y, out.reshape(x.shape), rtol=1e-5, atol=1e-5)
  for key in ("mean", "var"):
    np.testing.assert_allclose(stats["batch_stats"][key], expected["batch_stats"][key].mean(0), rtol=1e-5,
                               atol=1e-6)
  # The groups' mean variance, not the batch's (which also counts the spread between groups).
  whole = _bn_apply(plain, variables, x)[1]["batch_stats"]["var"]
  assert np.all(whole - stats["batch_stats"]["var"] > 0.1)


def test_bn_groups_span_consecutive_replicas():
  """Replica batches of 2, groups of 4: replicas (0, 1) and (2, 3) each normalise as one nn.BatchNorm batch and
  keep its running statistics."""
  from tinynet_jax.models.layers import batch_norm
  x = np.random.RandomState(3).randn(4, 2, 3, 3, 5) + np.arange(4.0)[:, None, None, None, None]
  x = jnp.asarray(x, jnp.float32)
  variables = _bn_variables(5)
  spanning = batch_norm(True, jnp.float32, "replicas", "bn", group_size=4)
  y, stats = jax.jit(jax.vmap(lambda xs: spanning.apply(variables, xs, mutable=["batch_stats"]),
                              axis_name="replicas"))(x)
  plain = batch_norm(True, jnp.float32, None, "bn")
  for group in range(2):
    out, expected = _bn_apply(plain, variables, x[2 * group:2 * group + 2].reshape(4, 3, 3, 5))
    np.testing.assert_allclose(y[2 * group:2 * group + 2].reshape(4, 3, 3, 5), out, rtol=1e-5, atol=1e-5)
    for replica in (2 * group, 2 * group + 1):
      for key in ("mean", "var"):
        np.testing.assert_allclose(stats["batch_stats"][key][replica], expected["batch_stats"][key], rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("group_size, replicas, axis_name", [(3, 1, None), (4, 1, None), (6, 4, "r"), (4, 3, "r")])
def test_bn_groups_that_do_not_tile_the_batch_are_refused(group_size, replicas, axis_name):
  """Replica batches of 2: a group must divide it, or span whole replicas that divide the replica count."""
  from tinynet_jax.models.layers import batch_norm
  module = batch_norm(True, jnp.float32, axis_name, "bn", group_size=group_size)
  x = jnp.ones((replicas, 2, 2, 2, 3))
  with pytest.raises(ValueError, match=f"BN group_size {group_size} neither divides the replica batch 2"):
    jax.eval_shape(jax.vmap(lambda xs: module.apply(_bn_variables(3), xs, mutable=["batch_stats"]),
                            axis_name="r"), x)
