"""predict and CAM: timm parity on converted weights, constructed CAM cases, one-line errors."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tinynet_jax import create_model, model_spec
from tinynet_jax.inference.cam import activation_maps


def _png(path, size=(90, 120), seed=0):
  """A smooth random picture written as PNG (TF's encoder: no extra dependency)."""
  from tinynet_jax.data.tfdata.tfenv import tf
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
  image = tf.cast(tf.clip_by_value(tf.image.resize(coarse[None], size, method="bicubic")[0], 0, 255), tf.uint8)
  path.write_bytes(tf.io.encode_png(image).numpy())
  return path


@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory):
  """Random-init timm TinyNet-E (with non-trivial BN statistics) saved as .pth and converted by our CLI."""
  torch = pytest.importorskip("torch")
  pytest.importorskip("timm")
  from tinynet_jax.train.benchmark import timm_model
  from tinynet_jax.checkpoints import convert
  root = tmp_path_factory.mktemp("timm")
  torch.manual_seed(0)
  model = timm_model(model_spec("tinynet_e")).eval()
  generator = torch.Generator().manual_seed(1)
  for module in model.modules():
    if isinstance(module, torch.nn.BatchNorm2d):
      module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=generator))
      module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=generator))
  torch.save(model.state_dict(), root / "tinynet_e.pth")
  convert(str(root / "tinynet_e.pth"), model_spec("tinynet_e"), str(root / "converted"))
  return model, root / "converted"


def test_predict_gives_timms_top5_on_the_same_weights_and_preprocessing(timm_checkpoint, cli, tmp_path):
  # In this process (conftest's `cli`): the JSON and the table runs share the model's compiled program.
  import torch
  from tinynet_jax.inference import preprocess
  timm_net, converted = timm_checkpoint
  images = [_png(tmp_path / "a.png", seed=1), _png(tmp_path / "b.png", size=(140, 100), seed=2)]
  code, out, err = cli("tinynet_jax.predict", "--checkpoint", converted, *images, "--json")
  assert code == 0, err
  ours = json.loads(out)
  pixels = preprocess([str(p) for p in images], 106)  # timm's eval transform, as predict applies it
  with torch.no_grad():
    theirs = torch.softmax(timm_net(torch.from_numpy(pixels).permute(0, 3, 1, 2)), dim=-1).numpy()
  for entry, probabilities in zip(ours, theirs):
    top = [t["class"] for t in entry["top"]]
    assert top == list(np.argsort(-probabilities)[:5])
    np.testing.assert_allclose([t["probability"] for t in entry["top"]], probabilities[top], atol=1e-5)
    assert entry["top"][0]["name"].startswith("n0")  # an ImageNet wnid, from TFDS's label file
  code, out, _ = cli("tinynet_jax.predict", "--checkpoint", converted, images[0])
  assert code == 0 and "1. " in out and "5. " in out


class Toy(nn.Module):
  """Head = 4x4-average-pooled input; `classify` = a classifier on its global mean (the TinyNet's GAP + linear)."""

  def setup(self):
    self.classifier = nn.Dense(2)

  def classify(self, head, train=False):
    return self.classifier(head.mean(axis=(1, 2)))

  def __call__(self, x, train=False, return_features=False):
    head = nn.avg_pool(x, (4, 4), (4, 4))
    logits = self.classify(head)
    return (logits, {"head": head}) if return_features else logits


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_the_map_peaks_where_the_class_channel_fires(method):
  image = np.zeros((1, 32, 32, 3), np.float32)
  image[0, 20:28, 4:12, 0] = 1.0  # channel 0 lights up bottom-left
  image[0, 2:10, 20:30, 1] = 1.0  # channel 1 top-right
  model = Toy()
  variables = model.init(jax.random.key(0), jnp.asarray(image))
  kernel = np.zeros((3, 2), np.float32)
  kernel[0, 1] = 1.0  # class 1 reads channel 0
  kernel[1, 0] = 1.0  # class 0 reads channel 1
  variables = {"params": {"classifier": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(2)}}}
  for cls, (rows, cols) in ((1, (slice(20, 28), slice(4, 12))), (0, (slice(2, 10), slice(20, 30)))):
    maps, classes = activation_maps(model, variables, image, cls, method)
    assert maps.shape == (1, 32, 32) and int(classes[0]) == cls
    assert float(maps.min()) == 0.0 and float(maps.max()) == pytest.approx(1.0)
    peak = np.unravel_index(int(np.argmax(maps[0])), (32, 32))
    assert rows.start - 2 <= peak[0] < rows.stop + 2 and cols.start - 2 <= peak[1] < cols.stop + 2
    inside = float(np.asarray(maps[0])[rows, cols].mean())
    assert inside > 3 * float(np.asarray(maps[0]).mean())


def test_gradcam_equals_relu_cam_for_a_pooled_linear_classifier():
  """For GAP + linear, d logit_k / d F = W[:, k] / hw everywhere: Grad-CAM is ReLU(CAM), up to scale."""
  spec = model_spec(r=0.2, d=0.3, w=0.3)
  model = create_model(spec, 7)
  x = jax.random.normal(jax.random.key(1), (2, spec.resolution, spec.resolution, 3))
  variables = jax.jit(model.init)(jax.random.key(0), x)
  cam, predicted = activation_maps(model, variables, x, None, "cam")
  grad, _ = activation_maps(model, variables, x, None, "gradcam")
  assert cam.shape == grad.shape == (2, spec.resolution, spec.resolution)
  assert (np.asarray(predicted) == np.asarray(jnp.argmax(model.apply(variables, x), -1))).all()
  raw, _ = activation_maps(model, variables, x, predicted, "cam")
  np.testing.assert_allclose(raw, cam, atol=1e-6)
  # ReLU of the raw (head-resolution) CAM, resized and min-max scaled like every map.
  _, features = model.apply(variables, x, return_features=True)
  weights = variables["params"]["classifier"]["kernel"].T[predicted]
  relu = jax.nn.relu(jnp.einsum("nhwc,nc->nhw", features["head"], weights))
  relu = jax.image.resize(relu, cam.shape, "bilinear")
  low = relu.min(axis=(1, 2), keepdims=True)
  relu = (relu - low) / (relu.max(axis=(1, 2), keepdims=True) - low)
  np.testing.assert_allclose(grad, relu, atol=1e-4)


def test_cam_cli_writes_one_and_two_panel_pictures(timm_checkpoint, cli, tmp_path):
  # In this process (conftest's `cli`: the tool's entry point), so the two runs share one model's compiled programs.
  _, converted = timm_checkpoint
  image = _png(tmp_path / "x.png")
  for checkpoints, name in (([converted], "one.png"), ([converted, converted], "two.png")):
    args = [a for c in checkpoints for a in ("--checkpoint", c)]
    code, _, err = cli("tinynet_jax.cam", *args, image, "--out", tmp_path / name, "--method", "gradcam")
    assert code == 0, err
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("module, args, needle", [
    ("tinynet_jax.predict", ["--checkpoint", "/no/such/dir", "IMAGE"], "no checkpoint"),
    ("tinynet_jax.predict", ["--checkpoint", "CKPT", "TEXT"], "cannot decode"),
    ("tinynet_jax.predict", ["--checkpoint", "CKPT", "/no/such.png"], "cannot read"),
    ("tinynet_jax.predict", ["--checkpoint", "CKPT", "IMAGE", "--best"], "best applies to a training workdir"),
    ("tinynet_jax.cam", ["--checkpoint", "CKPT", "IMAGE", "--out", "OUT", "--class", "1000"], "out of range"),
])
def test_bad_input_is_one_line_exit_2(timm_checkpoint, cli, tmp_path, module, args, needle):
  _, converted = timm_checkpoint
  (tmp_path / "t.txt").write_text("not an image")
  lookup = {"CKPT": converted, "IMAGE": _png(tmp_path / "i.png"), "TEXT": tmp_path / "t.txt",
            "OUT": tmp_path / "o.png"}
  # In this process (conftest's `cli`); one case per CLI in a real process too, for its own exit code and stderr.
  for run in (cli, cli.real) if needle in ("no checkpoint", "out of range") else (cli,):
    code, _, err = run(module, *[lookup.get(a, a) for a in args])
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o.png").exists()


def test_eval_config_checks_the_class_count(timm_checkpoint, run_module, tmp_path):
  _, converted = timm_checkpoint
  result = run_module("tinynet_jax.main", f"--config=configs/eval.py:checkpoint={converted},dataset=synthetic",
                      f"--workdir={tmp_path / 'e'}", "--config.dataset_options.num_classes=10")
  assert result.returncode == 2 and "1000 classes but dataset 'synthetic' has 10" in result.stderr
  assert not (tmp_path / "e" / "eval_metrics.json").exists()
  ok = run_module("tinynet_jax.main", f"--config=configs/eval.py:checkpoint={converted},dataset=synthetic,"
                  "batch_size=8", f"--workdir={tmp_path / 'f'}", "--config.dataset_options.num_eval=16")
  assert ok.returncode == 0, ok.stderr
  assert json.loads((tmp_path / "f" / "eval_metrics.json").read_text())["examples"] == 16
