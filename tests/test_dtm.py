"""DTM (`method="dtm"`): the step's unlabeled and negative terms, the
policy state it keeps, clear config errors, and the loop end to end on the
FER2013 sample (thresholds PNG, precision of kept labels). Resume after
SIGKILL: tests/test_train.py; 1 device = mesh = pmap: tests/test_parallel.py.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import config
from conftest import need
from jaxfer import methods
from jaxfer import models
from jaxfer.core import defaults
from jaxfer.core import report
from jaxfer.loop import train
from jaxfer.methods import dtm


def _method(pool_size=64, **fields):
  cfg = defaults.base()
  cfg.method, cfg.mu = "dtm", 2
  cfg.data.batch_size = 4
  cfg.optimizer.update(lr=0.1, schedule="constant", warmup_steps=0)
  cfg.dtm.update(fields)
  model = models.build(
    ml_collections.ConfigDict(
      dict(name="convnet", depth=2, width=4, norm="batch")
    ),
    7,
  )
  return cfg, methods.build(cfg, model, 10, pool_size=pool_size)


def _batch(b=4, mu=2, seed=0):
  rng = np.random.default_rng(seed)
  img = lambda n: rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
  n = b * mu
  return {
    "image": img(b),
    "label": rng.integers(0, 7, b).astype(np.int32),
    "unlabeled_weak": img(n),
    "unlabeled_strong": img(n),
    "unlabeled_index": rng.choice(64, n, replace=False).astype(np.int32),
    "unlabeled_true_label": rng.integers(0, 7, n).astype(np.int32),
  }


def _step(method, batch):
  state = jax.jit(method.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  return state, jax.jit(method.step)(state, batch, jax.random.key(1))


@pytest.mark.slow
def test_nothing_above_the_threshold_means_no_unlabeled_loss_or_gradient():
  batch = _batch()
  _, (none, m) = _step(_method(threshold="fixed", tau=1.0)[1], batch)
  _, (sup_only, _) = _step(
    _method(threshold="fixed", tau=1.0, unlabeled_weight=0.0)[1], batch
  )
  _, (all_in, m_all) = _step(_method(threshold="fixed", tau=0.01)[1], batch)
  assert float(m["unsup_loss"]) == 0.0 and float(m["mask_rate"]) == 0.0
  assert float(m_all["mask_rate"]) == 1.0 and float(m_all["unsup_loss"]) > 0
  for a, b in zip(jax.tree.leaves(none.net), jax.tree.leaves(sup_only.net)):
    np.testing.assert_array_equal(a, b)  # zero unlabeled gradient
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(
      jax.tree.leaves(none.net.params), jax.tree.leaves(all_in.net.params)
    )
  )


def test_flexmatch_buffer_records_the_batch_indices():
  batch = _batch()
  state, (new, m) = _step(_method(threshold="flexmatch", tau=0.01)[1], batch)
  assert float(m["mask_rate"]) == 1.0  # beta = 0 before any recount
  selected = np.asarray(new.policy["selected"])
  idx = batch["unlabeled_index"]
  assert (selected[idx] >= 0).all()
  assert (np.delete(selected, idx) == -1).all()
  assert state.policy["selected"].shape == (64,)


def test_kept_and_correct_metrics_count_the_kept_pseudo_labels():
  batch = _batch()
  _, (_, m) = _step(_method(threshold="fixed", tau=0.01)[1], batch)
  kept = sum(float(m[f"kept/{c}"]) for c in range(7))
  assert kept == pytest.approx(1.0)
  correct = sum(float(m[f"correct/{c}"]) for c in range(7))
  assert 0 <= correct <= kept
  assert all(
    float(m[f"threshold/{c}"]) == pytest.approx(0.01) for c in range(7)
  )


def test_negative_loss_equals_numpy_reference():
  rng = np.random.default_rng(0)
  z_s = rng.normal(size=(5, 4)).astype(np.float32)
  p_w = rng.dirichlet(np.ones(4) * 0.3, 5).astype(np.float32)
  w = np.array([1, 0, 0, 1, 0.5], np.float32)
  got = dtm.negative_loss(
    jnp.asarray(z_s), jnp.asarray(p_w), jnp.asarray(w), cut=0.1
  )
  p_s = np.exp(z_s) / np.exp(z_s).sum(-1, keepdims=True)
  per = []
  for i in range(5):
    ks = np.flatnonzero(p_w[i] < 0.1)
    per.append(-np.mean(np.log(1 - p_s[i, ks])) if ks.size else 0.0)
  np.testing.assert_allclose(
    float(got), np.mean((1 - w) * np.array(per)), rtol=1e-5
  )


def test_bad_configs_name_the_field():
  with pytest.raises(ValueError, match="config.dtm.threshold"):
    _method(threshold="nope")
  with pytest.raises(ValueError, match=r"config.dtm.tau must be in \(0, 1\]"):
    _method(tau=1.5)
  with pytest.raises(ValueError, match=r"config.data.batch_size \* config.mu"):
    _method(pool_size=7)  # 4 * 2 faces per step
  with pytest.raises(ValueError, match="config.ema_decay"):
    _method(teacher="ema")
  with pytest.raises(ValueError, match="config.dtm.teacher"):
    _method(teacher="other")


def _config(variant="smoke"):
  c = config("dtm_fer2013", variant)
  c.data.path = str(FER_SAMPLE)
  return c


@pytest.mark.slow
def test_smoke_run_logs_thresholds_and_precision_and_draws_them(tmp_path):
  need(FER_SAMPLE)
  result = train.run(_config(), str(tmp_path))
  assert "PrivateTest/model/macro_f1" in result
  rows = report.read_rows(tmp_path)
  tr = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in tr] == [2, 3, 4, 6]
  for r in tr:
    assert 0.15 <= r["threshold/0"] <= 0.3
    for c in range(7):  # precision = correct / kept, never above 1
      assert 0 <= r[f"correct/{c}"] <= r[f"kept/{c}"] + 1e-7
  assert (tmp_path / "thresholds.png").stat().st_size > 5000


@pytest.mark.parametrize("threshold", ["fixed", "flexmatch", "dtm"])
def test_the_pools_hidden_labels_reach_no_parameter(threshold):
  """The rest-of-Training pool's true labels ride in the batch only for
  the diagnostics: replacing them changes the precision metrics and no
  array of the state (network, optimizer, EMA, policy)."""
  batch = _batch()
  other = dict(
    batch, unlabeled_true_label=(batch["unlabeled_true_label"] + 3) % 7
  )
  fields = dict(threshold=threshold, tau=0.05)
  if threshold == "dtm":
    fields["dynamic"] = dict(tau_min=0.02)
  method = _method(**fields)[1]
  _, (a, ma) = _step(method, batch)
  _, (b, mb) = _step(method, other)
  assert float(ma["mask_rate"]) > 0  # pseudo-labels were kept
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  correct = [k for k in ma if k.startswith("correct/")]
  assert correct and any(float(ma[k]) != float(mb[k]) for k in correct)
