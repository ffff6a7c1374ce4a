"""DTM semi-supervised FER (`method="dtm"`): pseudo-labels on unlabeled
faces kept by a threshold policy (`jaxfer.methods.thresholds`), one network.

Per step, with B labeled faces and N = B * mu unlabeled ones (a weak and a
strong view each):

    L = CE(labeled weak views) + lambda_u * (1/N) sum_i w_i CE(z_s_i, t_i)
        [+ lambda_neg * L_neg] [+ lambda_e * FreeMatch fairness]

t_i is the hard argmax (or, `dtm.soft`, softmax(z_w / T)) of the weak view
from the network itself (`dtm.teacher="self"`: one train-mode forward on
[labeled; weak; strong], as USB's FixMatch) or from its EMA in eval mode
(`"ema"`). w_i = the policy's mask of p = softmax(z_w). The policy state is
updated from the **global** batch (all-gathered over the data axis), so one
device, a mesh and pmap give the same thresholds. Selective negative
learning (`dtm.negative.enabled`): a face weighs (1 - w_i) in
L_neg = -mean_{k: p_k < cut} log(1 - softmax(z_s)_k), its classes of low
probability taken as complementary labels.

Logged per class c (TensorBoard groups): `threshold/c`, `kept/c` (fraction
of the unlabeled batch kept with pseudo-label c) and, where the pool's true
labels are known (`unlabeled_true_label` in the batch, never used
to train), `correct/c` (kept as c and right): precision = correct / kept.
`export` draws `thresholds.png` from `metrics.jsonl` at each evaluation.
"""

import dataclasses
import functools
import pathlib
from typing import Any

import flax
import jax
import jax.numpy as jnp

from jaxfer.core import losses
from jaxfer.core import optim
from jaxfer.core import parallel
from jaxfer.core import report
from jaxfer.core import statics
from jaxfer.methods import base
from jaxfer.methods import thresholds as thr
from jaxfer.models import net as net_lib

TEACHERS = ("self", "ema")


@flax.struct.dataclass
class State:
  step: jax.Array
  net: net_lib.Net
  policy: Any  # the threshold policy's state (dict of arrays)


@dataclasses.dataclass(frozen=True)
class Negative:
  """`config.dtm.negative`, field for field."""

  enabled: bool
  cut: float
  weight: float


@dataclasses.dataclass(frozen=True)
class Hyper:
  """The statics of a DTM step: `config.dtm`'s fields under their own names
  (`negative`: its section), with the run's num_classes, label_smoothing
  and ema_decay; fairness_weight is `dtm.freematch.fairness_weight` when
  the policy is FreeMatch and 0 for the others. The defaults are
  `config.dtm`'s (jaxfer/core/defaults.py) only."""

  teacher: str
  soft: bool
  temperature: float
  unlabeled_weight: float
  negative: Negative
  num_classes: int
  fairness_weight: float
  label_smoothing: float
  ema_decay: float


def _gather(x, axis_name):
  """The global batch of a per-device array (identity on the mesh path)."""
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, tiled=True)


def negative_loss(logits_strong, probs_weak, weights, *, cut: float):
  """Selective negative learning: per face, -mean over classes k with
  p_k(weak) < cut of log(1 - softmax(z_s)_k); faces weigh (1 - w_i)."""
  comp = (probs_weak < cut).astype(jnp.float32)
  p_s = jax.nn.softmax(logits_strong)
  nll = -jnp.log(jnp.clip(1.0 - p_s, 1e-7, 1.0))
  per_face = jnp.sum(comp * nll, -1) / jnp.maximum(jnp.sum(comp, -1), 1.0)
  return jnp.mean((1.0 - weights) * per_face)


def unlabeled_terms(z_weak, z_strong, weights, hp: Hyper):
  """(1/N) sum_i w_i CE(z_s_i, t_i) with t from the weak logits."""
  z_weak = jax.lax.stop_gradient(z_weak)
  if hp.soft:
    target = jax.nn.softmax(z_weak / hp.temperature)
  else:
    target = jax.nn.one_hot(jnp.argmax(z_weak, -1), z_weak.shape[-1])
  return jnp.mean(weights * losses.soft_xent(z_strong, target))


def dtm_step(
  state: State,
  batch,
  rng,
  *,
  apply_fn,
  tx,
  policy: thr.Policy,
  hp: Hyper,
  axis_name=None,
):
  """One update of the network and the threshold policy. Pure.

  Args:
    state: the State.
    batch: {"image", "label", "unlabeled_weak", "unlabeled_strong",
      "unlabeled_index"[, "unlabeled_true_label"]}.
    rng: the run's base key (unused: the step draws nothing).
    apply_fn: the model's `apply`.
    tx: the optax transformation.
    policy: the threshold policy.
    hp: the statics.
    axis_name: under pmap/shard_map, the mapped data axis.
  """
  del rng
  net = state.net
  x, y = batch["image"], batch["label"]
  xw, xs = batch["unlabeled_weak"], batch["unlabeled_strong"]
  b, n = x.shape[0], xw.shape[0]
  if hp.teacher == "ema":
    z_teacher, _, _ = net_lib.forward(
      apply_fn, net.ema["params"], net.ema["batch_stats"], xw, train=False
    )

  def loss_fn(params):
    inputs = [x, xs] if hp.teacher == "ema" else [x, xw, xs]
    z, _, stats = net_lib.forward(
      apply_fn, params, net.batch_stats, jnp.concatenate(inputs), train=True
    )
    z_l, z_s = z[:b], z[-n:]
    z_w = z_teacher if hp.teacher == "ema" else z[b : b + n]
    z_w = jax.lax.stop_gradient(z_w)
    probs = jax.nn.softmax(z_w)
    w, pol = thr.select(
      policy,
      state.policy,
      _gather(probs, axis_name),
      _gather(batch["unlabeled_index"], axis_name),
    )
    if axis_name is not None:  # this device's rows of the mask
      w = jax.lax.dynamic_slice_in_dim(w, jax.lax.axis_index(axis_name) * n, n)
    l_sup = jnp.mean(losses.xent(z_l, y, alpha=hp.label_smoothing))
    l_u = unlabeled_terms(z_w, z_s, w, hp)
    total = l_sup + hp.unlabeled_weight * l_u
    m = {"sup_loss": l_sup, "unsup_loss": l_u}
    if hp.negative.enabled:
      l_neg = negative_loss(z_s, probs, w, cut=hp.negative.cut)
      total += hp.negative.weight * l_neg
      m["negative_loss"] = l_neg
    if hp.fairness_weight:
      l_fair = thr.freematch_fairness(w, z_s, pol, axis_name=axis_name)
      total += hp.fairness_weight * l_fair
      m["fairness_loss"] = l_fair
    return total, (stats, pol, w, probs, z_l, m)

  (loss, (stats, pol, w, probs, z_l, m)), grads = jax.value_and_grad(
    loss_fn, has_aux=True
  )(net.params)
  m = {
    **m,
    "loss": loss,
    "accuracy": losses.accuracy(z_l, y),
    **_pseudo_metrics(w, probs, batch.get("unlabeled_true_label"), hp),
  }
  grads, m, stats = parallel.pmean((grads, m, stats), axis_name)
  m.update(_threshold_metrics(policy, pol, hp.num_classes))
  new = net_lib.apply_updates(
    net, grads, stats, tx, ema_decay=hp.ema_decay, step=state.step
  )
  return State(state.step + 1, new, pol), m


def _pseudo_metrics(w, probs, true, hp: Hyper) -> dict:
  c = hp.num_classes
  kept = w[:, None] * jax.nn.one_hot(jnp.argmax(probs, -1), c)
  m = {"mask_rate": jnp.mean(w)}
  m.update({f"kept/{k}": jnp.mean(kept[:, k]) for k in range(c)})
  if true is not None:
    right = kept * jax.nn.one_hot(true, c)  # label -1: no class
    m.update({f"correct/{k}": jnp.mean(right[:, k]) for k in range(c)})
  return m


def _threshold_metrics(policy, pol, c: int) -> dict:
  t = thr.class_thresholds(policy, pol, c)
  return {f"threshold/{k}": t[k] for k in range(c)}


def hyper(config) -> Hyper:
  d = config.dtm
  if d.teacher not in TEACHERS:
    raise ValueError(
      f"config.dtm.teacher must be one of {TEACHERS}, got {d.teacher!r}"
    )
  if d.teacher == "ema" and not config.ema_decay > 0:
    raise ValueError("config.dtm.teacher='ema' needs config.ema_decay > 0")
  return statics.from_section(
    Hyper,
    d,
    where="config.dtm",
    negative=statics.from_section(
      Negative, d.negative, where="config.dtm.negative"
    ),
    num_classes=config.data.num_classes,
    fairness_weight=(
      d.freematch.fairness_weight if d.threshold == "freematch" else 0.0
    ),
    label_smoothing=config.label_smoothing,
    ema_decay=config.ema_decay,
  )


def build(config, model, run: base.Run) -> base.Method:
  """The dtm Method; `run.pool_size` is the unlabeled pool's size (the loop
  passes it; FlexMatch keeps one int32 per face)."""
  mu = config.mu
  if not mu:
    raise ValueError(
      "method 'dtm' needs unlabeled faces: set config.mu > 0 "
      "(unlabeled images per labeled one)"
    )
  policy = thr.build(config.dtm)
  hp = hyper(config)
  unlabeled = config.data.batch_size * mu
  if run.pool_size and run.pool_size < unlabeled:
    raise ValueError(
      f"the unlabeled pool has {run.pool_size} faces, fewer than the "
      f"{unlabeled} of one step (config.data.batch_size * config.mu): "
      "lower config.mu or use a larger config.data.unlabeled pool"
    )
  tx, schedule = optim.build(config.optimizer, run.total_steps)
  ema = hp.ema_decay > 0

  def init(rng, images):
    return State(
      jnp.int32(0),
      net_lib.init_net(rng, model, images, tx, ema=ema),
      policy.init(hp.num_classes, max(run.pool_size, 1)),
    )

  step = functools.partial(
    dtm_step,
    apply_fn=model.apply,
    tx=tx,
    policy=policy,
    hp=hp,
    axis_name=run.axis_name,
  )

  def export(state, workdir, class_names):
    del state
    if (pathlib.Path(workdir) / "metrics.jsonl").exists():
      rows = report.read_rows(workdir)
      report.threshold_curves(
        [r for r in rows if r.get("split") == "train"],
        class_names,
        pathlib.Path(workdir) / "thresholds.png",
      )

  return base.single(
    init,
    base.with_lrs(step, lr=schedule),
    lambda state: base.evaluated(state.net, "model", "ema"),
    export,
  )
