"""The PyTorch side of `bench torch` is jaxfer's network (same logits from
the same weights) and its rows are what the table prints. Needs torch (the
`torch` extra; CI installs it)."""

import numpy as np
import pytest

torch = pytest.importorskip(
  "torch", reason="PyTorch is not installed (pip install -e '.[torch]')"
)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

from conftest import config  # pylint: disable=wrong-import-position
from jaxfer import models  # pylint: disable=wrong-import-position
from jaxfer.bench import torch_ref  # pylint: disable=wrong-import-position
from jaxfer.models import net as net_lib  # pylint: disable=wrong-import-position

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow


def _copy_into(twin, params, stats, size):
  """jaxfer's ConvNet variables into the torch twin, written out here:
  conv kernels HWIO -> OIHW, BatchNorm scale/bias/mean/var, and the head's
  input rows from flax's (H, W, C) flatten order to torch's (C, H, W)."""
  convs = [m for m in twin if isinstance(m, torch.nn.Conv2d)]
  bns = [m for m in twin if isinstance(m, torch.nn.BatchNorm2d)]
  head = twin[-1]
  with torch.no_grad():
    for i, conv in enumerate(convs):
      p = params[f"Conv_{i}"]
      conv.weight.copy_(torch.tensor(np.transpose(p["kernel"], (3, 2, 0, 1))))
      conv.bias.copy_(torch.tensor(np.asarray(p["bias"])))
    for i, bn in enumerate(bns):
      p, s = params[f"BatchNorm_{i}"], stats[f"BatchNorm_{i}"]
      bn.weight.copy_(torch.tensor(np.asarray(p["scale"])))
      bn.bias.copy_(torch.tensor(np.asarray(p["bias"])))
      bn.running_mean.copy_(torch.tensor(np.asarray(s["mean"])))
      bn.running_var.copy_(torch.tensor(np.asarray(s["var"])))
    k = np.asarray(params["Dense_0"]["kernel"])  # (H*W*C, classes)
    c = convs[-1].out_channels
    k = (
      k.reshape(size, size, c, -1)
      .transpose(2, 0, 1, 3)
      .reshape(size * size * c, -1)
    )
    head.weight.copy_(torch.tensor(k.T.copy()))
    head.bias.copy_(torch.tensor(np.asarray(params["Dense_0"]["bias"])))


@pytest.mark.parametrize("train", [False, True])
def test_twin_gives_jaxfers_logits_from_the_same_weights(train):
  c = config("face2exp_fer2013", "smoke")
  d = c.data
  model = models.build(c.model, d.num_classes)
  x = (
    np.random.default_rng(0)
    .normal(size=(6, d.image_size, d.image_size, d.channels))
    .astype(np.float32)
  )
  v = model.init(jax.random.key(3), jnp.asarray(x), train=False)
  # running statistics away from (0, 1), so eval mode tests them too
  stats = jax.tree.map(
    lambda a: a + 0.3 * jax.random.uniform(jax.random.key(4), a.shape),
    v["batch_stats"],
  )
  twin = torch_ref.convnet(
    torch, c.model, d.num_classes, d.image_size, d.channels
  )
  size = d.image_size // 2**c.model.depth
  _copy_into(twin, v["params"], stats, size)
  twin.train(train)
  want = np.asarray(
    net_lib.forward(model.apply, v["params"], stats, x, train=train)[0]
  )
  got = twin(torch.tensor(x.transpose(0, 3, 1, 2))).detach().numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_bench_torch_rows_eager():
  c = config("face2exp_fer2013", "smoke")
  out = torch_ref.run(c, steps=1, rounds=2, compiled=(False,))
  rows = out["rows"]
  assert list(rows) == [
    "jaxfer supervised",
    "jaxfer first_order",
    "jaxfer exact_jvp",
    "torch eager MPL step",
    "torch eager supervised",
  ]
  base = rows["jaxfer first_order"]["round_medians_sec"]
  for r in rows.values():
    per_round = [a / b for a, b in zip(r["round_medians_sec"], base)]
    assert r["over_jaxfer_first_order_spread"] == pytest.approx(
      {
        "min": min(per_round),
        "median": sum(per_round) / 2,
        "max": max(per_round),
      }
    )
  assert "jaxfer exact_jvp / torch eager MPL step" in out
  assert out["torch_parameters"] > 0


def test_other_models_are_refused_by_name():
  c = config("supervised_fer2013", "smoke")
  c.model.name = "resnet"
  with pytest.raises(ValueError, match="config.model.name='resnet'"):
    torch_ref.convnet(torch, c.model, 7, 48, 1)
