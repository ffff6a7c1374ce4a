r"""Confidence thresholds for pseudo-labels: which unlabeled faces teach.

Every policy is a `Policy` of pure functions on a state of arrays (a dict,
jit-, donate- and Orbax-friendly):

* ``init(num_classes, pool_size) -> state``
* ``update(state, probs, indices) -> state``: from the weak views' class
  probabilities ``probs f32[N, C]`` of the **global** batch and the pool
  indices ``int32[N]`` of its faces;
* ``mask(state, probs) -> weights f32[N]`` in [0, 1].

`select(policy, state, probs, indices)` runs them in the order the
reference code does (``update_first``): FlexMatch masks with the state
before the batch, FreeMatch, SoftMatch and DTM update first. With p̂ = max_c
p_c and ĉ = argmax_c p_c of each face, tau the fixed threshold:

* ``fixed`` (FixMatch): ``w = [p̂ >= tau]``.
* ``flexmatch`` (USB's FlexMatchThresholdingHook, exactly): a per-face
  buffer ``selected[pool_size]`` (-1 = never confident) records ĉ of every
  face once ``p̂ >= tau``; sigma(c) = #faces recorded as c; after each batch,
  unless every face is -1 or all in one class,
  ``beta(c) = sigma(c) / max(max_c sigma, n_unused)`` (warm-up; without it
  ``/ max_c sigma``); ``w = [p̂ >= tau * beta(ĉ) / (2 - beta(ĉ))]`` with the
  beta of the batch before (0 at the start: every face passes until the
  first recount).
* ``freematch`` (USB): ``tau_t = m tau_{t-1} + (1 - m) mean p̂`` (tau_0 =
  1/C), ``p~_t = m p~_{t-1} + (1 - m) mean p`` and a label histogram EMA;
  ``w = [p̂ >= tau_t * p~_t(ĉ) / max p~_t]``; `freematch_fairness` is its
  fairness loss.
* ``softmatch`` (USB, no distribution alignment): EMA mean mu_t and unbiased
  variance var_t of p̂ (mu_0 = 1/C, var_0 = 1);
  ``w = exp(-min(p̂ - mu_t, 0)^2 / (2 var_t / n_sigma^2))``.
* ``dtm`` (jaxfer's dynamic threshold, per class and per stage of training;
  the DTM paper's exact rule is not public)::

      g_t    = m g_{t-1} + (1 - m) mean_i p̂_i                      (g_0 = 1/C)
      mu_t(c) = m mu_{t-1}(c) + (1 - m) mean_{i: ĉ_i = c} p̂_i  (kept if no
                face is predicted c; mu_0 = 1/C)
      T_t(c) = clip([tau_min + (tau - tau_min) g_t] *
                    (mu_t(c) / max_c' mu_t(c'))^gamma, tau_min, tau)
      w_i    = [p̂_i >= T_t(ĉ_i)]

  The stage part (the bracket) rises with the model's confidence over
  training, from near tau_min to near tau; the class part lowers the
  threshold of classes the model is less sure of (fear, disgust) without
  FreeMatch's dependence on class *frequency* (its p~(c) is a class's
  probability mass, tiny for a rare class however confident). ``per_stage=
  False`` fixes the bracket at tau, ``per_class=False`` sets gamma = 0.

`class_thresholds(policy, state, num_classes)` gives each class's current
threshold (for logs and plots; SoftMatch: the p̂ where the weight is 1).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

POLICIES = ("fixed", "flexmatch", "freematch", "softmatch", "dtm")


class Policy(NamedTuple):
  """A threshold policy: pure functions over a dict of arrays."""

  name: str
  init: Callable  # (num_classes, pool_size) -> state
  update: Callable  # (state, probs, indices) -> state
  mask: Callable  # (state, probs) -> weights [N]
  thresholds: Callable  # (state, num_classes) -> per-class T [C]
  update_first: bool


def _conf(probs):
  return jnp.max(probs, -1), jnp.argmax(probs, -1)


def select(policy: Policy, state, probs, indices):
  """(weights, new state) in the policy's reference order."""
  if policy.update_first:
    state = policy.update(state, probs, indices)
    return policy.mask(state, probs), state
  return policy.mask(state, probs), policy.update(state, probs, indices)


def class_thresholds(policy: Policy, state, num_classes: int):
  return policy.thresholds(state, num_classes)


def fixed(*, tau: float = 0.95) -> Policy:
  def mask(state, probs):
    del state
    return (_conf(probs)[0] >= tau).astype(jnp.float32)

  return Policy(
    "fixed",
    lambda c, n: {},
    lambda s, p, i: s,
    mask,
    lambda s, c: jnp.full((c,), tau, jnp.float32),
    False,
  )


def flexmatch(*, tau: float = 0.95, warmup: bool = True) -> Policy:
  """FlexMatch as USB codes it (see the module docstring)."""

  def init(num_classes, pool_size):
    return {
      "selected": jnp.full((pool_size,), -1, jnp.int32),
      "beta": jnp.zeros((num_classes,), jnp.float32),
    }

  def update(state, probs, indices):
    p_hat, c_hat = _conf(probs)
    selected = state["selected"]
    n = selected.shape[0]
    num_classes = state["beta"].shape[0]
    target = jnp.where(p_hat >= tau, indices, n)  # n: dropped
    selected = selected.at[target].set(c_hat.astype(jnp.int32), mode="drop")
    sigma = (
      jnp.zeros((num_classes,), jnp.float32)
      .at[selected]
      .add((selected >= 0).astype(jnp.float32), mode="drop")
    )
    unused = jnp.sum(selected < 0).astype(jnp.float32)
    top = jnp.max(sigma)
    recount = jnp.maximum(top, unused) < n
    denom = jnp.maximum(top, unused) if warmup else top
    beta = jnp.where(recount, sigma / jnp.maximum(denom, 1.0), state["beta"])
    return {"selected": selected, "beta": beta}

  def thresholds(state, num_classes):
    del num_classes
    b = state["beta"]
    return tau * b / (2.0 - b)

  def mask(state, probs):
    p_hat, c_hat = _conf(probs)
    return (p_hat >= thresholds(state, None)[c_hat]).astype(jnp.float32)

  return Policy("flexmatch", init, update, mask, thresholds, False)


def freematch(*, momentum: float = 0.999) -> Policy:
  """FreeMatch's self-adaptive thresholds as USB codes them."""
  m = momentum

  def init(num_classes, pool_size):
    del pool_size
    u = jnp.full((num_classes,), 1.0 / num_classes, jnp.float32)
    return {
      "time_p": jnp.float32(1.0 / num_classes),
      "p_model": u,
      "label_hist": u,
    }

  def update(state, probs, indices):
    del indices
    p_hat, c_hat = _conf(probs)
    c = probs.shape[-1]
    hist = jnp.zeros((c,), jnp.float32).at[c_hat].add(1.0)
    return {
      "time_p": m * state["time_p"] + (1 - m) * jnp.mean(p_hat),
      "p_model": m * state["p_model"] + (1 - m) * jnp.mean(probs, 0),
      "label_hist": (m * state["label_hist"] + (1 - m) * hist / jnp.sum(hist)),
    }

  def thresholds(state, num_classes):
    del num_classes
    return state["time_p"] * state["p_model"] / jnp.max(state["p_model"])

  def mask(state, probs):
    p_hat, c_hat = _conf(probs)
    return (p_hat >= thresholds(state, None)[c_hat]).astype(jnp.float32)

  return Policy("freematch", init, update, mask, thresholds, True)


def freematch_fairness(weights, logits_strong, state, *, axis_name=None):
  """FreeMatch's fairness loss on the kept faces (USB's `entropy_loss`):
  sum_c SumNorm(p~ / h)(c) log SumNorm(pbar_s / h_s)(c), with pbar_s and h_s
  the mean probability and prediction histogram of the kept faces' strong
  views; 0 when nothing is kept. Reduced over `axis_name` (global batch)."""
  sel = (weights > 0).astype(jnp.float32)
  prob_s = jax.nn.softmax(logits_strong)
  c = prob_s.shape[-1]
  onehot = jax.nn.one_hot(jnp.argmax(prob_s, -1), c)
  sums = (
    jnp.sum(sel[:, None] * onehot, 0),
    jnp.sum(sel[:, None] * prob_s, 0),
    jnp.sum(sel),
  )
  if axis_name is not None:
    sums = jax.lax.psum(sums, axis_name)
  hist_s, prob_sum, kept = sums
  inv = lambda h: jnp.where(h > 0, 1.0 / jnp.where(h > 0, h, 1.0), 0.0)
  hist_s = hist_s / jnp.maximum(jnp.sum(hist_s), 1.0)
  mod_model = state["p_model"] * inv(state["label_hist"])
  mod_model = jax.lax.stop_gradient(mod_model / jnp.sum(mod_model))
  mod_mean = (
    prob_sum / jnp.maximum(kept, 1.0) * jax.lax.stop_gradient(inv(hist_s))
  )
  mod_mean = mod_mean / jnp.sum(mod_mean)
  loss = jnp.sum(mod_model * jnp.log(mod_mean + 1e-12))
  return jnp.where(kept > 0, loss, 0.0)


def softmatch(*, momentum: float = 0.999, n_sigma: float = 2.0) -> Policy:
  """SoftMatch's truncated Gaussian weights (USB, one global mean/var)."""
  m = momentum

  def init(num_classes, pool_size):
    del pool_size
    return {"mu": jnp.float32(1.0 / num_classes), "var": jnp.float32(1.0)}

  def update(state, probs, indices):
    del indices
    p_hat = _conf(probs)[0]
    n = p_hat.shape[0]
    var = jnp.sum((p_hat - jnp.mean(p_hat)) ** 2) / max(n - 1, 1)
    return {
      "mu": m * state["mu"] + (1 - m) * jnp.mean(p_hat),
      "var": m * state["var"] + (1 - m) * var,
    }

  def mask(state, probs):
    p_hat = _conf(probs)[0]
    gap = jnp.minimum(p_hat - state["mu"], 0.0)
    return jnp.exp(-(gap**2) / (2 * state["var"] / n_sigma**2))

  return Policy(
    "softmatch",
    init,
    update,
    mask,
    lambda s, c: jnp.full((c,), s["mu"], jnp.float32),
    True,
  )


def dtm(
  *,
  tau: float = 0.95,
  tau_min: float = 0.5,
  momentum: float = 0.99,
  gamma: float = 1.0,
  per_class: bool = True,
  per_stage: bool = True,
) -> Policy:
  """jaxfer's dynamic per-class, per-stage threshold (module docstring)."""
  m = momentum
  gamma = gamma if per_class else 0.0

  def init(num_classes, pool_size):
    del pool_size
    return {
      "g": jnp.float32(1.0 / num_classes),
      "mu": jnp.full((num_classes,), 1.0 / num_classes, jnp.float32),
    }

  def update(state, probs, indices):
    del indices
    p_hat, c_hat = _conf(probs)
    c = probs.shape[-1]
    count = jnp.zeros((c,), jnp.float32).at[c_hat].add(1.0)
    conf_sum = jnp.zeros((c,), jnp.float32).at[c_hat].add(p_hat)
    mean_c = conf_sum / jnp.maximum(count, 1.0)
    mu = jnp.where(count > 0, m * state["mu"] + (1 - m) * mean_c, state["mu"])
    return {"g": m * state["g"] + (1 - m) * jnp.mean(p_hat), "mu": mu}

  def thresholds(state, num_classes):
    del num_classes
    stage = tau_min + (tau - tau_min) * state["g"] if per_stage else tau
    ratio = state["mu"] / jnp.max(state["mu"])
    return jnp.clip(stage * ratio**gamma, tau_min, tau)

  def mask(state, probs):
    p_hat, c_hat = _conf(probs)
    return (p_hat >= thresholds(state, None)[c_hat]).astype(jnp.float32)

  return Policy("dtm", init, update, mask, thresholds, True)


def build(cfg) -> Policy:
  """The policy of `config.dtm` (fields: threshold, tau, and per policy)."""
  name = cfg.threshold
  if name not in POLICIES:
    raise ValueError(
      f"config.dtm.threshold must be one of {POLICIES}, got {name!r}"
    )
  if not 0 < cfg.tau <= 1:
    raise ValueError(f"config.dtm.tau must be in (0, 1], got {cfg.tau}")
  if name == "fixed":
    return fixed(tau=cfg.tau)
  if name == "flexmatch":
    return flexmatch(tau=cfg.tau, warmup=cfg.flexmatch.warmup)
  if name == "freematch":
    return freematch(momentum=cfg.freematch.momentum)
  if name == "softmatch":
    return softmatch(
      momentum=cfg.softmatch.momentum, n_sigma=cfg.softmatch.n_sigma
    )
  d = cfg.dynamic
  if not 0 < d.tau_min <= cfg.tau:
    raise ValueError(
      f"config.dtm.dynamic.tau_min must be in (0, "
      f"config.dtm.tau={cfg.tau}], got {d.tau_min}"
    )
  return dtm(
    tau=cfg.tau,
    tau_min=d.tau_min,
    momentum=d.momentum,
    gamma=d.gamma,
    per_class=d.per_class,
    per_stage=d.per_stage,
  )
