"""PyTorch weights into jaxfer's ResNet (`config.init_from`): logits equal
to a torchvision-layout ResNet's in eval mode, every tensor accounted for,
the Meta-Face2Exp checkpoint format, a jaxfer workdir. Needs torch (the
`torch` extra; CI installs it).

torchvision itself is not installed here (its only wheels for this
machine's torch come with a 5.5 GB CUDA build of torch): `TorchResNet`
below is torchvision's `resnet.py` architecture written out (v1.5: the
stride on the 3x3 convolution of a bottleneck), with its module names, so
its state_dict keys are torchvision's. Where torchvision does import
(e.g. torch 2.14.1 + torchvision 0.29.1), `test_logits_equal_torchvision_
itself` checks against torchvision's own ResNets and the twin's keys."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip(
  "torch", reason="PyTorch is not installed (pip install -e '.[torch]')"
)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

from conftest import config  # pylint: disable=wrong-import-position
from jaxfer import methods  # pylint: disable=wrong-import-position
from jaxfer import models  # pylint: disable=wrong-import-position
from jaxfer.loop import pretrained  # pylint: disable=wrong-import-position
from jaxfer.models import torch_import  # pylint: disable=wrong-import-position

nn = torch.nn


class _Basic(nn.Module):
  expansion = 1

  def __init__(self, cin, c, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(c)
    self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(c)
    self.relu = nn.ReLU()
    self.downsample = None
    if stride != 1 or cin != c:
      self.downsample = nn.Sequential(
        nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c)
      )

  def forward(self, x):
    y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class _Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin, c, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, c, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(c)
    self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(c)
    self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(4 * c)
    self.relu = nn.ReLU()
    self.downsample = None
    if stride != 1 or cin != 4 * c:
      self.downsample = nn.Sequential(
        nn.Conv2d(cin, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c)
      )

  def forward(self, x):
    y = self.relu(self.bn1(self.conv1(x)))
    y = self.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class TorchResNet(nn.Module):
  """torchvision.models.ResNet's layout (names, strides, paddings)."""

  def __init__(self, depth, num_classes, width=64):
    super().__init__()
    block = _Bottleneck if depth == 50 else _Basic
    stages = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    cin = width
    for i, n in enumerate(stages):
      blocks = []
      for j in range(n):
        blocks.append(block(cin, width * 2**i, 2 if i and not j else 1))
        cin = width * 2**i * block.expansion
      setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    for i in range(4):
      x = getattr(self, f"layer{i + 1}")(x)
    return self.fc(torch.flatten(self.avgpool(x), 1))


def _random_torch(depth, num_classes, seed=0, width=64, net=None):
  torch.manual_seed(seed)
  net = TorchResNet(depth, num_classes, width) if net is None else net
  with torch.no_grad():  # BatchNorm away from identity
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
        m.running_mean.uniform_(-0.2, 0.2)
        m.running_var.uniform_(0.5, 1.5)
  return net.eval()


def _write_safetensors(path, sd):
  """A .safetensors file written out by hand (the format's spec)."""
  header, blobs, offset = {}, [], 0
  for k, v in sd.items():
    a = v.detach().numpy()
    dtype = {"float32": "F32", "int64": "I64"}[str(a.dtype)]
    header[k] = {
      "dtype": dtype,
      "shape": list(a.shape),
      "data_offsets": [offset, offset + a.nbytes],
    }
    blobs.append(a.tobytes())
    offset += a.nbytes
  h = json.dumps(header).encode()
  path.write_bytes(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def _config(
  depth, channels=3, num_classes=7, method="supervised", size=32, width=16
):
  c = config("supervised_fer2013", "smoke")
  c.method = method
  c.model = dict(
    name="resnet",
    depth=depth,
    stem="imagenet",
    norm="batch",
    width=width,
    dtype="float32",
  )
  c.data.channels, c.data.image_size = channels, size
  c.data.num_classes = num_classes
  return c


def _fresh_state(c):
  model = models.build(c.model, c.data.num_classes)
  method = methods.build(c, model, c.total_steps)
  x = jnp.zeros((1, c.data.image_size, c.data.image_size, c.data.channels))
  return model, jax.jit(method.init)(jax.random.key(0), x)


def _jaxfer_logits(model, net, x_nhwc):
  v = {"params": net.params, "batch_stats": net.batch_stats}
  return np.asarray(model.apply(v, x_nhwc, train=False)[0])


def _assert_same_logits(tnet, path, depth, size, seed):
  """Loads `path` into a fresh jaxfer ResNet of torchvision's shapes and
  checks its eval-mode logits against `tnet`'s to 1e-4; returns the log."""
  c = _config(depth, size=size, width=64)  # torchvision's own shapes
  c.init_from = str(path)
  model, state = _fresh_state(c)
  state, notes = pretrained.load_into(c, state)
  x = (
    np.random.default_rng(seed)
    .normal(size=(3, size, size, 3))
    .astype(np.float32)
  )
  with torch.no_grad():
    want = tnet(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
  got = _jaxfer_logits(model, state.net, x)
  np.testing.assert_allclose(
    got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max()
  )
  return notes


@pytest.mark.slow
@pytest.mark.parametrize("depth,suffix", [(18, ".pth"), (50, ".safetensors")])
def test_logits_equal_torchvision_layout_in_eval_mode(tmp_path, depth, suffix):
  tnet = _random_torch(depth, 7)
  path = tmp_path / f"r{depth}{suffix}"
  if suffix == ".pth":
    torch.save(tnet.state_dict(), path)
  else:
    _write_safetensors(path, tnet.state_dict())
  size = 64 if depth == 18 else 32  # layer4 at 2x2 and 1x1
  notes = _assert_same_logits(tnet, path, depth, size, seed=1)
  assert notes == [f"net <- {path} [model]"]


def _torchvision():
  """torchvision, or a skip saying why (its PyPI wheels need the CUDA build
  of their own torch release: beside another torch they fail to import
  with a RuntimeError, not an ImportError)."""
  try:
    import torchvision  # pylint: disable=g-import-not-at-top

    return torchvision
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(
      f"torchvision is not importable here ({type(e).__name__}: "
      f"{str(e)[:80]}); the torchvision-layout twin stands in"
    )


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 34, 50])
def test_logits_equal_torchvision_itself(tmp_path, depth):
  """The same proof against torchvision's own ResNet where it imports, and
  the twin above checked against it key by key."""
  tv = _torchvision()
  tnet = _random_torch(
    depth, 7, net=getattr(tv.models, f"resnet{depth}")(num_classes=7)
  )
  twin = TorchResNet(depth, 7).state_dict()
  assert {k: tuple(v.shape) for k, v in twin.items()} == {
    k: tuple(v.shape) for k, v in tnet.state_dict().items()
  }
  path = tmp_path / f"tv{depth}.pth"
  torch.save(tnet.state_dict(), path)
  _assert_same_logits(tnet, path, depth, 64, seed=3)


@pytest.mark.slow
def test_grey_model_sums_the_rgb_stem_and_a_new_head(tmp_path):
  tnet = _random_torch(18, 1000, width=16)  # ImageNet's head
  path = tmp_path / "r18.pth"
  torch.save({"state_dict": tnet.state_dict()}, path)
  c = _config(18, channels=1)
  c.init_from = str(path)
  model, fresh = _fresh_state(c)
  state, notes = pretrained.load_into(c, fresh)
  assert any(
    "head fc.weight (1000, 128)" in n and "re-initialised" in n for n in notes
  )
  np.testing.assert_array_equal(
    state.net.params["Dense_0"]["kernel"], fresh.net.params["Dense_0"]["kernel"]
  )
  # grey x through the summed stem == grey x on three channels through RGB
  x = np.random.default_rng(2).normal(size=(2, 32, 32, 1)).astype(np.float32)
  feats = model.apply(
    {"params": state.net.params, "batch_stats": state.net.batch_stats},
    x,
    train=False,
  )[1]
  tnet.fc = nn.Identity()
  want = tnet(torch.tensor(np.repeat(x, 3, -1).transpose(0, 3, 1, 2)))
  np.testing.assert_allclose(
    np.asarray(feats), want.detach().numpy(), rtol=1e-4, atol=1e-4
  )


@pytest.mark.slow
def test_every_tensor_is_accounted_for(tmp_path):
  c = _config(18)
  _, state = _fresh_state(c)
  sd = {
    k: v.numpy() for k, v in _random_torch(18, 7, width=16).state_dict().items()
  }
  template = {"params": state.net.params, "batch_stats": state.net.batch_stats}
  kw = dict(stages=(2, 2, 2, 2), bottleneck=False)

  def error(d, **extra):
    with pytest.raises(ValueError) as e:
      torch_import.resnet_variables(d, template, **kw, **extra)
    return str(e.value)

  msg = error({**sd, "layer5.0.conv1.weight": sd["conv1.weight"]})
  assert "map to no jaxfer parameter: ['layer5.0.conv1.weight']" in msg
  msg = error({k: v for k, v in sd.items() if k != "layer4.1.bn2.running_var"})
  assert "nothing fills: ['batch_stats/BasicBlock_7/BatchNorm_1/var']" in msg
  bad = dict(sd)
  bad["layer2.0.conv1.weight"] = np.zeros((32, 8, 3, 3), np.float32)
  msg = error(bad)
  assert (
    "layer2.0.conv1.weight: file (32, 8, 3, 3)" in msg
    and "BasicBlock_2/Conv_0/kernel wants (3, 3, 16, 32)" in msg
  )
  no_head = {k: v for k, v in sd.items() if not k.startswith("fc.")}
  msg = error(no_head)
  assert "Dense_0" in msg and "init_allow_missing_head" in msg
  _, notes = torch_import.resnet_variables(
    no_head, template, **kw, allow_missing_head=True
  )
  assert any("no head" in n for n in notes)


@pytest.mark.slow
def test_small_stem_is_refused_with_the_field_to_set(tmp_path):
  path = tmp_path / "r18.pth"
  torch.save(_random_torch(18, 7, width=16).state_dict(), path)
  c = _config(18)
  c.model.stem = "small"
  c.init_from = str(path)
  with pytest.raises(ValueError, match="stem='imagenet'"):
    pretrained.load_into(c, _fresh_state(c)[1])


@pytest.mark.slow
def test_face2exp_checkpoint_into_teacher_and_student(tmp_path):
  teacher = _random_torch(18, 7, seed=1, width=16)
  student = _random_torch(18, 7, seed=2, width=16)
  prefix = lambda sd: {f"module.{k}": v for k, v in sd.items()}
  path = tmp_path / "face2exp_best.pth.tar"
  torch.save(
    {
      "step": 10,
      "teacher_state_dict": prefix(teacher.state_dict()),
      "student_state_dict": student.state_dict(),
      "avg_state_dict": None,
    },
    path,
  )
  c = _config(18, method="face2exp")
  c.mu = 1
  c.init_from = str(path)
  model, state = _fresh_state(c)
  state, notes = pretrained.load_into(c, state)
  assert f"teacher <- {path} [teacher]" in notes
  x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype(np.float32)
  xt = torch.tensor(x.transpose(0, 3, 1, 2))
  for net, tnet in ((state.teacher, teacher), (state.student, student)):
    np.testing.assert_allclose(
      _jaxfer_logits(model, net, x),
      tnet(xt).detach().numpy(),
      rtol=1e-4,
      atol=1e-4,
    )
  c2 = _config(18)  # one network: the student
  c2.init_from = str(path)
  s2, notes = pretrained.load_into(c2, _fresh_state(c2)[1])
  assert notes[-1] == f"net <- {path} [student]"
  np.testing.assert_array_equal(
    s2.net.params["Conv_0"]["kernel"], state.student.params["Conv_0"]["kernel"]
  )


@pytest.mark.slow
def test_a_jaxfer_workdir_fine_tunes_with_a_new_head(tmp_path):
  from jaxfer.loop import train  # pylint: disable=g-import-not-at-top

  src = config("default", "smoke")
  src.total_steps, src.checkpoint.every = 2, 2
  train.run(src, str(tmp_path / "src"))
  c = config("default", "smoke")
  c.data.num_classes = 5  # another label set
  c.init_from = str(tmp_path / "src")
  _, fresh = _fresh_state(c)
  state, notes = pretrained.load_into(c, fresh)
  assert any("7 classes -> 5: the head is re-initialised" in n for n in notes)
  from jaxfer.loop import restore  # pylint: disable=g-import-not-at-top

  _, _, _, trained = restore.load(str(tmp_path / "src"))
  np.testing.assert_array_equal(
    state.net.params["Conv_0"]["kernel"], trained.net.params["Conv_0"]["kernel"]
  )
  assert state.net.params["Dense_0"]["kernel"].shape[-1] == 5
  c.model.width = 16  # another architecture
  with pytest.raises(ValueError, match="does not fit"):
    pretrained.load_into(c, _fresh_state(c)[1])


@pytest.mark.parametrize(
  "modules",
  [
    "jaxfer.main, jaxfer.omni, jaxfer.loop.pretrained, jaxfer.models.torch_import,"
    " jaxfer.bench.torch_ref, jaxfer.bench.meta",
    "jaxfer.predict, jaxfer.select",
    "jaxfer.bench.__main__",
  ],
)  # own flags
def test_the_library_never_imports_torch(modules):
  code = (
    f"import sys, {modules}; "
    "assert 'torch' not in sys.modules, 'torch imported'"
  )
  p = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=False
  )
  assert p.returncode == 0, p.stderr[-2000:]
