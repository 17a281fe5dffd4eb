"""MindSpore checkpoints (.ckpt): the wire-format reader/writer, the official model's names, what a trainer
checkpoint holds beside the network (dropped by rule), strictness, and wrong or damaged files. No MindSpore needed;
where it is installed, one test checks our files against MindSpore's own reader and writer."""
import os
import re

import jax
import numpy as np
import pytest

import tinynet_jax
from tinynet_jax.checkpoints import convert, export_mindspore, read_ckpt, write_ckpt
from tinynet_jax.checkpoints.mindspore_port import is_training_state
from tinynet_jax.errors import CheckpointError
from test_checkpoints import SPEC, random_variables

CONVERT = "tinynet_jax.convert"
ARCH = ("--r", 0.3, "--d", 0.4, "--w", 0.3)


def test_round_trip_of_the_wire_format_with_split_tensors_scalars_strings_and_crc(tmp_path):
  entries = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
             "global_step": np.array([7], np.int32), "lr": np.float32(0.5), "half": np.ones((3,), np.float16),
             "flags": np.array([True, False]), "steps": np.arange(3, dtype=np.int64),
             "note": "TinyNet-C, \u00e9poch 3", "empty": np.zeros((0, 4), np.float32)}
  for split, crc in ((0, False), (5, True)):  # 5 bytes: every tensor spread over several same-tag values
    write_ckpt(tmp_path / "x.ckpt", entries, split_bytes=split, crc=crc)
    read = read_ckpt(tmp_path / "x.ckpt")
    assert list(read) == list(entries)
    for name, value in entries.items():
      if isinstance(value, str):
        assert read[name] == value
      else:
        assert read[name].dtype == np.asarray(value).dtype and read[name].shape == np.shape(value)
        np.testing.assert_array_equal(read[name], value)
  assert sorted(os.listdir(tmp_path)) == ["x.ckpt"]  # written atomically, no temporary left


@pytest.mark.parametrize("tag", ["moments.conv_stem.weight", "moment.blocks.layer.0.0.conv_dw.weight",
                                 "mean_square.classifier.bias", "accum.bn1.gamma", "stat.bn1.gamma",
                                 "global_step", "learning_rate", "momentum", "scale_sense"])
def test_training_state_is_dropped_by_rule(tag):
  assert is_training_state(tag)


@pytest.mark.parametrize("tag", ["conv_stem.weight", "bn1.moving_mean", "blocks.layer.0.0.se.conv_reduce.bias",
                                 "moment", "ema.conv_stem.weight", "learning_rate.x", "network.conv_stem.weight"])
def test_network_and_unknown_names_are_not_training_state(tag):
  assert not is_training_state(tag)


def _mindspore_names(reference):
  """timm's state-dict names -> the official MindSpore model's, by the rules of its source
  (mindspore-ai/models research/cv/tinynet/src/tinynet.py), independently of the library's mapping."""
  torch = pytest.importorskip("torch")
  bn = {name for name, m in reference.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
  leaves = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
  names = {}
  for key in reference.state_dict():
    module, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
      continue
    name = f"{module}.{leaves[leaf]}" if module in bn else key
    names[key] = re.sub(r"^blocks\.(\d+)\.(\d+)\.", r"blocks.layer.\1.\2.", name)
  return names


def test_mindspore_trainer_checkpoint_gives_the_timm_logits(tmp_path, cli):
  """One timm model, written once as a timm state dict and once as the MindSpore trainer's last.ckpt (renamed,
  with RMSProp slots, step counter and lr schedule): both conversions give the same logits, and timm's."""
  torch = pytest.importorskip("torch")
  pytest.importorskip("timm")
  from safetensors.numpy import save_file
  from timm.models.efficientnet import _gen_tinynet
  torch.manual_seed(0)
  reference = _gen_tinynet("tinynet_a", SPEC.w, SPEC.d, pretrained=False, num_classes=10).eval()
  generator = torch.Generator().manual_seed(1)
  with torch.no_grad():  # non-trivial BN statistics, so that a swapped mean/variance cannot pass
    for module in reference.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        for tensor, low in ((module.running_mean, -0.5), (module.running_var, 0.5), (module.weight, 0.5),
                            (module.bias, -0.5)):
          tensor.copy_(torch.rand(tensor.shape, generator=generator) + low)
  state = {k: v.numpy() for k, v in reference.state_dict().items()}
  save_file(state, str(tmp_path / "timm.safetensors"))
  names = _mindspore_names(reference)
  ckpt = {names[k]: v for k, v in state.items() if k in names}
  rng = np.random.RandomState(0)
  for key, param in reference.named_parameters():  # what save_checkpoint(train_network) adds for nn.RMSProp
    for slot in ("moment", "mean_square"):
      ckpt[f"{slot}.{names[key]}"] = rng.randn(*param.shape).astype(np.float32)
  ckpt.update(global_step=np.array([1234], np.int32), learning_rate=np.linspace(0.1, 0, 50, dtype=np.float32))
  write_ckpt(tmp_path / "last.ckpt", ckpt)

  convert(str(tmp_path / "timm.safetensors"), SPEC, str(tmp_path / "from_timm"))
  code, out, err = cli(CONVERT, "--mindspore-checkpoint", tmp_path / "last.ckpt", *ARCH, "--out", tmp_path / "ms")
  assert code == 0, err
  assert "wrote" in out
  model, from_timm, _ = tinynet_jax.load(tmp_path / "from_timm")
  _, from_ms, _ = tinynet_jax.load(tmp_path / "ms")
  info = tinynet_jax.checkpoints.read_metadata(tmp_path / "ms")
  assert info["num_classes"] == 10 and info["metadata"]["format"] == "mindspore"
  assert info["metadata"]["dropped_training_state"] == 2 * len(list(reference.parameters())) + 2
  images = np.random.RandomState(0).randn(2, SPEC.resolution, SPEC.resolution, 3).astype(np.float32)
  apply = jax.jit(model.apply)
  logits_ms, logits_timm = np.asarray(apply(from_ms, images)), np.asarray(apply(from_timm, images))
  with torch.no_grad():
    expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
  assert np.abs(logits_ms - logits_timm).max() <= 1e-5
  assert np.abs(logits_ms - expected).max() <= 1e-4 * (1 + np.abs(expected).max())


def test_import_is_strict_and_reports_mindspore_names(tmp_path):
  model = tinynet_jax.create_model(SPEC, num_classes=5)
  entries = export_mindspore(random_variables(model))
  del entries["blocks.layer.1.0.bn2.moving_variance"]
  entries["ema.conv_stem.weight"] = entries["conv_stem.weight"]  # EMA copies are not the official trainer's
  entries["conv_head.weight"] = entries["conv_head.weight"][:, :-1]
  entries["moments.conv_stem.weight"] = entries["conv_stem.weight"]  # dropped, so never reported
  write_ckpt(tmp_path / "bad.ckpt", entries)
  with pytest.raises(CheckpointError) as error:
    convert(str(tmp_path / "bad.ckpt"), SPEC, str(tmp_path / "out"), source="mindspore")
  message = str(error.value)
  for expected in ("missing 1: blocks.layer.1.0.bn2.moving_variance", "unexpected 1: ema.conv_stem.weight",
                   "wrong shape 1: conv_head.weight"):
    assert expected in message
  assert "moments." not in message and "\n" not in message
  assert sorted(os.listdir(tmp_path)) == ["bad.ckpt"]


def _valid(tmp_path):
  write_ckpt(tmp_path / "ok.ckpt", {"conv_stem.weight": np.ones((4, 3, 3, 3), np.float32),
                                    "global_step": np.array([3], np.int32)}, crc=True)
  return (tmp_path / "ok.ckpt").read_bytes()


DAMAGE = {
    "empty": lambda data: b"",
    "garbage": lambda data: b"not a checkpoint at all",
    "truncated": lambda data: data[:len(data) // 2],
    "bad crc": lambda data: data[:40] + bytes([data[40] ^ 1]) + data[41:],
    "bad dtype": lambda data: data.replace(b"Float32", b"Float33"),
    "short data": lambda data: data.replace(b"\x0a\x04\x04\x03\x03\x03", b"\x0a\x04\x05\x03\x03\x03")[:-17],
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_is_one_line_naming_file_and_format(tmp_path, damage):
  (tmp_path / "x.ckpt").write_bytes(DAMAGE[damage](_valid(tmp_path)))
  with pytest.raises(CheckpointError) as error:
    read_ckpt(tmp_path / "x.ckpt")
  message = str(error.value)
  assert str(tmp_path / "x.ckpt") in message and "MindSpore checkpoint" in message and "\n" not in message


def test_wrong_file_types_name_the_format_and_the_flag(tmp_path, cli):
  from safetensors.numpy import save_file
  model = tinynet_jax.create_model(SPEC, num_classes=5)
  variables = random_variables(model)
  write_ckpt(tmp_path / "model.ckpt", export_mindspore(variables))
  save_file({"x": np.ones(2, np.float32)}, str(tmp_path / "w.safetensors"))
  (tmp_path / "w.pth").write_bytes(b"PK\x03\x04" + bytes(60))  # torch.save's zip container
  cases = [("--timm-checkpoint", "model.ckpt", "is a MindSpore checkpoint"),
           ("--mindspore-checkpoint", "w.safetensors", "is a safetensors file"),
           ("--mindspore-checkpoint", "w.pth", "is a PyTorch checkpoint")]
  for flag, name, expected in cases:
    code, out, err = cli(CONVERT, flag, tmp_path / name, *ARCH, "--out", tmp_path / "out")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert expected in err and "weights_only" not in err, err
  code, _, err = cli(CONVERT, "--mindspore-checkpoint", tmp_path / "model.ckpt", *ARCH, "--ema", "--out",
                     tmp_path / "out")
  assert code == 2 and "ema_best.ckpt" in err
  assert not (tmp_path / "out").exists()
  # The right flag reads the same file, and the weights are ours exactly.
  code, _, err = cli(CONVERT, "--mindspore-checkpoint", tmp_path / "model.ckpt", *ARCH, "--out", tmp_path / "out")
  assert code == 0, err
  _, loaded, _ = tinynet_jax.load(tmp_path / "out")
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)


def test_files_agree_with_mindspore_itself(tmp_path):
  """Only where MindSpore is installed (not in CI: too big): its reader reads ours, ours reads its writer's."""
  ms = pytest.importorskip("mindspore")
  entries = {"conv_stem.weight": np.random.RandomState(0).randn(4, 3, 3, 3).astype(np.float32),
             "global_step": np.array([3], np.int32), "lr": np.float32(0.25)}
  write_ckpt(tmp_path / "ours.ckpt", entries, crc=True)
  loaded = ms.load_checkpoint(str(tmp_path / "ours.ckpt"), crc_check=True)
  for name, value in entries.items():
    np.testing.assert_array_equal(loaded[name].asnumpy(), value)
  params = [{"name": k, "data": ms.Tensor(v)} for k, v in entries.items()]
  ms.save_checkpoint(params, str(tmp_path / "theirs.ckpt"), append_dict={"epoch_note": "three"})
  read = read_ckpt(tmp_path / "theirs.ckpt")
  for name, value in entries.items():
    np.testing.assert_array_equal(read[name], value)
  assert read["epoch_note"] == "three"


def test_official_mindspore_model_converts_to_its_own_logits(tmp_path, cli):
  """Opt-in (MindSpore installed and TINYNET_MINDSPORE_TINYNET=<mindspore models>/research/cv/tinynet): the
  official model's own save_checkpoint of its train network (RMSProp) converts to its own logits."""
  ms = pytest.importorskip("mindspore")
  source = os.environ.get("TINYNET_MINDSPORE_TINYNET")
  if not source or not os.path.isfile(os.path.join(source, "src", "tinynet.py")):
    pytest.skip("set TINYNET_MINDSPORE_TINYNET to the official research/cv/tinynet directory")
  import importlib.util
  spec = importlib.util.spec_from_file_location("official_tinynet", os.path.join(source, "src", "tinynet.py"))
  official = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(official)
  ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
  net = official.tinynet(sub_model="e", num_classes=1000)
  net.set_train(False)
  rng = np.random.RandomState(0)
  for param in net.get_parameters():  # non-trivial BN statistics and affine parameters
    if param.name.endswith(("moving_variance", "gamma")):
      param.set_data(ms.Tensor(rng.uniform(0.5, 1.5, param.shape).astype(np.float32)))
    elif param.name.endswith(("moving_mean", "beta")):
      param.set_data(ms.Tensor(rng.uniform(-0.5, 0.5, param.shape).astype(np.float32)))
  schedule = ms.Tensor(np.linspace(0.1, 0, 20, dtype=np.float32))  # a per-step lr: a 'learning_rate' entry
  optimizer = ms.nn.RMSProp(net.trainable_params(), learning_rate=schedule, momentum=0.9, epsilon=1e-3)
  loss = ms.nn.WithLossCell(net, ms.nn.SoftmaxCrossEntropyWithLogits(sparse=True))
  ms.save_checkpoint(ms.nn.TrainOneStepCell(loss, optimizer), str(tmp_path / "last.ckpt"))
  images = rng.randn(2, 3, 106, 106).astype(np.float32)
  expected = net(ms.Tensor(images)).asnumpy()
  code, _, err = cli(CONVERT, "--mindspore-checkpoint", tmp_path / "last.ckpt", "--model", "tinynet_e", "--out",
                     tmp_path / "out")
  assert code == 0, err
  model, variables, _ = tinynet_jax.load(tmp_path / "out")
  logits = np.asarray(jax.jit(model.apply)(variables, images.transpose(0, 2, 3, 1)))
  assert np.abs(logits - expected).max() <= 1e-5 * (1 + np.abs(expected).max())
