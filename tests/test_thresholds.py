"""Threshold policies against plain-numpy references written here, over a
scripted sequence of batches (FlexMatch's warm-up included)."""

import collections

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxfer.methods import thresholds

C, POOL = 4, 12


def _batches(num=8, n=6, seed=0):
  """(probs, indices) per batch: confidences that grow over the sequence,
  skewed to class 0, so every rule moves (and some faces pass 0.95)."""
  rng = np.random.default_rng(seed)
  out = []
  for t in range(num):
    logits = rng.normal(size=(n, C)) * (1 + t)
    logits[:, 0] += 1.0
    p = np.exp(logits - logits.max(-1, keepdims=True))
    out.append(
      (
        (p / p.sum(-1, keepdims=True)).astype(np.float32),
        rng.choice(POOL, n, replace=False).astype(np.int32),
      )
    )
  return out


def _run(policy, batches):
  state = policy.init(C, POOL)
  got = []
  for probs, idx in batches:
    w, state = thresholds.select(
      policy, state, jnp.asarray(probs), jnp.asarray(idx)
    )
    got.append((np.asarray(w), jax.tree.map(np.asarray, state)))
  return got


class FlexMatchRef:
  """USB's FlexMatchThresholdingHook, transcribed to numpy + Counter."""

  def __init__(self, tau, warmup):
    self.tau, self.warmup = tau, warmup
    self.selected = -np.ones(POOL, np.int64)
    self.acc = np.zeros(C)

  def _update(self):
    counter = collections.Counter(self.selected.tolist())
    if max(counter.values()) < POOL:
      if self.warmup:
        for i in range(C):
          self.acc[i] = counter[i] / max(counter.values())
      else:
        wo = dict(counter)
        wo.pop(-1, None)
        for i in range(C):
          self.acc[i] = counter[i] / max(wo.values())

  def masking(self, probs, idx):
    p, c = probs.max(-1), probs.argmax(-1)
    mask = p >= self.tau * (self.acc[c] / (2.0 - self.acc[c]))
    select = p >= self.tau
    self.selected[idx[select]] = c[select]
    self._update()
    return mask.astype(np.float32)


@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_equals_usb(warmup):
  batches = _batches()
  ref = FlexMatchRef(0.95, warmup)
  got = _run(thresholds.flexmatch(tau=0.95, warmup=warmup), batches)
  passed = 0
  for (probs, idx), (w, state) in zip(batches, got):
    want = ref.masking(probs.astype(np.float64), idx)
    np.testing.assert_array_equal(w, want)
    np.testing.assert_array_equal(state["selected"], ref.selected)
    np.testing.assert_allclose(state["beta"], ref.acc, rtol=1e-6)
    passed += int((probs.max(-1) >= 0.95).sum())
  assert passed >= 3 and ref.acc.max() > 0  # the buffer really moved
  # Before any recount beta = 0: the threshold is 0, every face passes.
  assert got[0][0].all()


def test_flexmatch_warmup_matters_while_most_faces_are_unused():
  batches = _batches(num=3)  # 3 confident faces of 12 by then
  warm = _run(thresholds.flexmatch(warmup=True), batches)[-1][1]["beta"]
  cold = _run(thresholds.flexmatch(warmup=False), batches)[-1][1]["beta"]
  assert warm.max() < 1.0 and cold.max() == 1.0


def _ema(m, old, new):
  return m * old + (1 - m) * new


def test_freematch_equals_numpy_reference():
  m = 0.9
  batches = _batches()
  got = _run(thresholds.freematch(momentum=m), batches)
  time_p, p_model, hist = 1 / C, np.full(C, 1 / C), np.full(C, 1 / C)
  for (probs, _), (w, state) in zip(batches, got):
    p = probs.astype(np.float64)
    time_p = _ema(m, time_p, p.max(-1).mean())
    p_model = _ema(m, p_model, p.mean(0))
    h = np.bincount(p.argmax(-1), minlength=C)
    hist = _ema(m, hist, h / h.sum())
    want = p.max(-1) >= time_p * (p_model / p_model.max())[p.argmax(-1)]
    np.testing.assert_array_equal(w, want.astype(np.float32))
    np.testing.assert_allclose(state["time_p"], time_p, rtol=1e-5)
    np.testing.assert_allclose(state["p_model"], p_model, rtol=1e-5)
    np.testing.assert_allclose(state["label_hist"], hist, rtol=1e-5)


def test_freematch_fairness_equals_numpy_reference():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(8, C)).astype(np.float32)
  w = np.array([1, 0, 1, 1, 0, 1, 0, 1], np.float32)
  state = {
    "p_model": np.array([0.4, 0.3, 0.2, 0.1], np.float32),
    "label_hist": np.array([0.5, 0.2, 0.2, 0.1], np.float32),
  }
  got = thresholds.freematch_fairness(
    jnp.asarray(w), jnp.asarray(logits), jax.tree.map(jnp.asarray, state)
  )
  # USB's entropy_loss on the kept rows.
  s = logits[w > 0].astype(np.float64)
  prob = np.exp(s - s.max(-1, keepdims=True))
  prob /= prob.sum(-1, keepdims=True)
  hist = np.bincount(prob.argmax(-1), minlength=C).astype(np.float64)
  hist /= hist.sum()
  with np.errstate(divide="ignore"):
    inv = lambda h: np.nan_to_num(1 / h, nan=0.0, posinf=0.0, neginf=0.0)
    mod_model = state["p_model"] * inv(state["label_hist"])
    mod_mean = prob.mean(0) * inv(hist)
  mod_model /= mod_model.sum()
  mod_mean /= mod_mean.sum()
  want = np.sum(mod_model * np.log(mod_mean + 1e-12))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  zero = thresholds.freematch_fairness(
    jnp.zeros(8), jnp.asarray(logits), jax.tree.map(jnp.asarray, state)
  )
  assert float(zero) == 0.0


def test_softmatch_equals_numpy_reference():
  m = 0.8
  batches = _batches()
  got = _run(thresholds.softmatch(momentum=m, n_sigma=2.0), batches)
  mu, var = 1 / C, 1.0
  for (probs, _), (w, state) in zip(batches, got):
    p = probs.max(-1).astype(np.float64)
    mu, var = _ema(m, mu, p.mean()), _ema(m, var, p.var(ddof=1))
    want = np.exp(-(np.minimum(p - mu, 0) ** 2) / (2 * var / 4))
    np.testing.assert_allclose(w, want, rtol=1e-5)
    np.testing.assert_allclose(
      [state["mu"], state["var"]], [mu, var], rtol=1e-5
    )
  assert (got[-1][0] < 1).any() and (got[-1][0] == 1).any()


@pytest.mark.parametrize(
  "per_class,per_stage", [(True, True), (False, True), (True, False)]
)
def test_dtm_equals_numpy_reference(per_class, per_stage):
  tau, tau_min, m, gamma = 0.95, 0.5, 0.7, 1.5
  batches = _batches()
  got = _run(
    thresholds.dtm(
      tau=tau,
      tau_min=tau_min,
      momentum=m,
      gamma=gamma,
      per_class=per_class,
      per_stage=per_stage,
    ),
    batches,
  )
  g, mu = 1 / C, np.full(C, 1 / C)
  for (probs, _), (w, state) in zip(batches, got):
    p, c = probs.max(-1).astype(np.float64), probs.argmax(-1)
    g = _ema(m, g, p.mean())
    for k in range(C):
      if (c == k).any():
        mu[k] = _ema(m, mu[k], p[c == k].mean())
    stage = tau_min + (tau - tau_min) * g if per_stage else tau
    t = np.clip(
      stage * (mu / mu.max()) ** (gamma if per_class else 0), tau_min, tau
    )
    np.testing.assert_array_equal(w, (p >= t[c]).astype(np.float32))
    np.testing.assert_allclose(state["g"], g, rtol=1e-5)
    np.testing.assert_allclose(state["mu"], mu, rtol=1e-5)
    np.testing.assert_allclose(
      thresholds.class_thresholds(
        thresholds.dtm(
          tau=tau,
          tau_min=tau_min,
          momentum=m,
          gamma=gamma,
          per_class=per_class,
          per_stage=per_stage,
        ),
        state,
        C,
      ),
      t,
      rtol=1e-5,
    )
  spread = np.ptp(
    np.asarray(
      thresholds.dtm(
        tau=tau,
        tau_min=tau_min,
        gamma=gamma,
        per_class=per_class,
        per_stage=per_stage,
      ).thresholds(got[-1][1], C)
    )
  )
  assert (spread > 0) == per_class  # the class part separates classes


def test_fixed_is_fixmatch():
  probs, idx = _batches(num=1)[0]
  w, state = thresholds.select(
    thresholds.fixed(tau=0.6), {}, jnp.asarray(probs), jnp.asarray(idx)
  )
  np.testing.assert_array_equal(w, (probs.max(-1) >= 0.6).astype(np.float32))
  assert state == {}


def _cfg(**kw):
  c = ml_collections.ConfigDict(
    dict(
      threshold="fixed",
      tau=0.95,
      flexmatch=dict(warmup=True),
      freematch=dict(momentum=0.999),
      softmatch=dict(momentum=0.999, n_sigma=2.0),
      dynamic=dict(
        tau_min=0.5, momentum=0.99, gamma=1.0, per_class=True, per_stage=True
      ),
    )
  )
  c.update(kw)
  return c


def test_bad_policy_configs_name_the_field():
  with pytest.raises(ValueError, match="config.dtm.threshold"):
    thresholds.build(_cfg(threshold="adaptive"))
  for tau in (0.0, 1.5):
    with pytest.raises(ValueError, match="config.dtm.tau"):
      thresholds.build(_cfg(tau=tau))
  with pytest.raises(ValueError, match="tau_min"):
    thresholds.build(_cfg(threshold="dtm", dynamic=dict(tau_min=0.99)))
  for name in thresholds.POLICIES:
    assert thresholds.build(_cfg(threshold=name)).name == name
