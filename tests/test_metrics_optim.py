"""Metrics against hand computations, bootstrap intervals against the
binomial closed form, duplicate rows found by pixels; schedules and
weight-decay masks."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxfer.core import defaults
from jaxfer.core import metrics
from jaxfer.core import optim


def test_metrics_by_hand():
  labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
  preds = np.array([0, 0, 1, 1, 0, 2, 2, 1, 2, 2])
  mask = np.array([1] * 9 + [0])
  cm = metrics.confusion_matrix(labels, preds, 3, mask)
  np.testing.assert_array_equal(cm, [[2, 1, 0], [1, 1, 0], [0, 1, 3]])
  m = metrics.summarize(cm)
  assert m["accuracy"] == pytest.approx(6 / 9)
  assert m["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
  p = np.array([2 / 3, 1 / 3, 1.0])
  r = np.array([2 / 3, 1 / 2, 3 / 4])
  assert m["macro_f1"] == pytest.approx(np.mean(2 * p * r / (p + r)))


def test_absent_class_left_out_of_class_means():
  cm = metrics.confusion_matrix(np.array([0, 1]), np.array([0, 0]), 3)
  m = metrics.summarize(cm)
  assert m["mean_class_accuracy"] == pytest.approx(0.5)
  assert m["macro_f1"] == pytest.approx((2 * 0.5 / 1.5 + 0) / 2)


def test_bootstrap_interval_of_accuracy_is_the_binomial_one():
  """Accuracy over n rows with k right: the percentile bootstrap's 95%
  interval is p +- 1.96 sqrt(p (1 - p) / n) to within resampling noise."""
  n, k = 3000, 2100
  labels = np.zeros(n, int)
  preds = np.where(np.arange(n) < k, 0, 1)
  ci = metrics.bootstrap(labels, preds, 2, n=2000, seed=1)
  p = k / n
  half = 1.96 * np.sqrt(p * (1 - p) / n)
  assert ci["accuracy"][0] == pytest.approx(p - half, abs=3e-3)
  assert ci["accuracy"][1] == pytest.approx(p + half, abs=3e-3)
  # every row right: no spread; a seed gives the same draws
  assert metrics.bootstrap(labels, labels, 2, n=50)["accuracy"] == (1.0, 1.0)
  assert ci == metrics.bootstrap(labels, preds, 2, n=2000, seed=1)


def test_rows_also_in_training_found_by_pixels():
  from jaxfer.data import dedup

  rng = np.random.default_rng(0)
  train = rng.integers(0, 256, (50, 6, 6, 1), dtype=np.uint8)
  test = rng.integers(0, 256, (20, 6, 6, 1), dtype=np.uint8)
  test[[3, 11]] = train[[40, 7]]
  near = train[5].copy()
  near[0, 0, 0] ^= 1  # one grey level off: not a copy
  test[15] = near

  class Rows:  # a source of indexable rows (no .images array)
    def __init__(self, images):
      self.x = images

    def __len__(self):
      return len(self.x)

    def __getitem__(self, i):
      return {"image": self.x[i]}

  want = np.array([any((t == u).all() for u in train) for t in test])
  assert want.sum() == 2
  np.testing.assert_array_equal(dedup.also_in(Rows(test), Rows(train)), want)


def test_schedule_wait_warmup_cosine():
  s = optim.cosine_schedule(
    lr=1.0, total_steps=110, warmup_steps=10, wait_steps=5
  )
  assert float(s(0)) == 0 and float(s(4)) == 0
  assert float(s(10)) == pytest.approx(0.5)
  assert float(s(15)) == pytest.approx(1.0)
  assert float(s(15 + 47.5)) == pytest.approx(0.5, abs=1e-6)
  assert float(s(110)) == pytest.approx(0.0, abs=1e-7)


def test_weight_decay_skips_norms_and_biases():
  params = {
    "conv": {"kernel": jnp.ones(2), "bias": jnp.ones(2)},
    "norm": {"scale": jnp.ones(2)},
  }
  cfg = defaults.optimizer(
    name="sgd",
    lr=1.0,
    momentum=0.0,
    weight_decay=0.5,
    schedule="constant",
    warmup_steps=0,
  )
  tx, _ = optim.build(cfg, 10)
  zeros = {
    "conv": {"kernel": jnp.zeros(2), "bias": jnp.zeros(2)},
    "norm": {"scale": jnp.zeros(2)},
  }
  updates, _ = tx.update(zeros, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_allclose(new["conv"]["kernel"], 0.5)
  np.testing.assert_allclose(new["conv"]["bias"], 1.0)
  np.testing.assert_allclose(new["norm"]["scale"], 1.0)


def test_unknown_optimizer():
  with pytest.raises(ValueError, match="sgd or adamw"):
    optim.build(defaults.optimizer(name="lamb", lr=1.0), 10)


def test_ema_warms_up_and_averages_batchnorm_statistics():
  """decay_t = min(decay, (1 + t) / (10 + t)); parameters and BatchNorm
  statistics averaged alike (numpy reference)."""
  steps = np.arange(0, 3000, 7)
  want = np.minimum(0.999, (1 + steps) / (10 + steps))
  np.testing.assert_allclose(optim.ema_decay_at(0.999, steps), want, rtol=1e-6)
  ema = {"params": {"w": jnp.zeros(3)}, "batch_stats": {"m": jnp.ones(2)}}
  e = ema
  ref_w, ref_m = np.zeros(3), np.ones(2)
  for t in range(5):
    w, m = np.full(3, t + 1.0), np.full(2, -t)
    e = optim.ema_variables(
      e, {"w": jnp.asarray(w)}, {"m": jnp.asarray(m)}, 0.999, t
    )
    d = min(0.999, (1 + t) / (10 + t))
    ref_w, ref_m = d * ref_w + (1 - d) * w, d * ref_m + (1 - d) * m
  np.testing.assert_allclose(e["params"]["w"], ref_w, rtol=1e-6)
  np.testing.assert_allclose(e["batch_stats"]["m"], ref_m, rtol=1e-6)
  assert float(e["params"]["w"][0]) > 1.0  # not held at the initial 0
