"""Model shapes, norms, dtypes and config errors."""

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from jaxfer import models


@pytest.mark.parametrize(
  "cfg,size,channels,feat",
  [
    (
      dict(
        name="resnet",
        depth=18,
        stages=(1, 1),
        width=4,
        stem="small",
        norm="batch",
      ),
      48,
      1,
      8,
    ),
    (
      dict(
        name="resnet",
        depth=50,
        stages=(1, 1),
        width=4,
        stem="imagenet",
        norm="group",
      ),
      64,
      3,
      32,
    ),
    (
      dict(name="resnet", depth=34, stages=(1,), width=4, norm="none"),
      16,
      1,
      4,
    ),
    (dict(name="wideresnet", depth=10, widen=1, norm="batch"), 32, 3, 64),
    (
      dict(name="convnet", depth=2, width=8, norm="instance"),
      48,
      1,
      8 * 12 * 12,
    ),
  ],
)
def test_logits_and_features(cfg, size, channels, feat):
  m = models.build(ml_collections.ConfigDict(cfg), 7)
  x = jnp.ones((2, size, size, channels))
  v = m.init(jax.random.key(0), x)
  (logits, features), new = m.apply(v, x, train=True, mutable=["batch_stats"])
  assert logits.shape == (2, 7) and features.shape == (2, feat)
  assert ("batch_stats" in v) == (cfg["norm"] == "batch")
  assert bool(jnp.all(jnp.isfinite(logits)))
  if "batch_stats" in v:  # train mode updates running statistics
    old = jax.tree.leaves(v["batch_stats"])
    assert any(
      bool(jnp.any(a != b))
      for a, b in zip(old, jax.tree.leaves(new["batch_stats"]))
    )


def test_full_resnet18_parameter_count():
  m = models.build(
    ml_collections.ConfigDict(
      dict(name="resnet", depth=18, stem="imagenet", norm="batch")
    ),
    1000,
  )
  shapes = jax.eval_shape(m.init, jax.random.key(0), jnp.ones((1, 224, 224, 3)))
  n = sum(x.size for x in jax.tree.leaves(shapes["params"]))
  assert n == 11_689_512  # torchvision resnet18


def test_bfloat16_compute_float32_params():
  m = models.build(
    ml_collections.ConfigDict(
      dict(name="convnet", depth=1, width=4, dtype="bfloat16")
    ),
    3,
  )
  v = m.init(jax.random.key(0), jnp.ones((1, 8, 8, 1)))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(v))
  logits, _ = m.apply(v, jnp.ones((1, 8, 8, 1)))
  assert logits.dtype == jnp.float32


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="config.model.name"):
    models.build(ml_collections.ConfigDict(dict(name="vit")), 7)
  with pytest.raises(ValueError, match="widht"):
    models.build(ml_collections.ConfigDict(dict(name="convnet", widht=3)), 7)
  with pytest.raises(ValueError, match="config.model.dtype"):
    models.build(
      ml_collections.ConfigDict(dict(name="convnet", dtype="fp8")), 7
    )
