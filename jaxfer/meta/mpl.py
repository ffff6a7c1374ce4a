"""Meta Pseudo Labels feedback, four ways: the math of Meta-Face2Exp.

A teacher (the "base network") learns from labeled FER data (cross-entropy)
and unlabeled faces (UDA consistency between a weak and a strong view); a
student (the "adaptation network") learns from the teacher's pseudo-labels
of the strong views; the teacher is also trained by the student's result on
the labeled batch, the *feedback*. See ../shared/REFERENCE.md section 1.

The teacher's forward runs once on [labeled; weak; strong]; everything the
teacher learns from is a function of those logits `z`, so its gradient is one
`jax.vjp` pull-back of d(loss)/dz. This module holds what every feedback
estimator shares (the teacher's forward, UDA, the student's real optax
updates, its labeled loss); the estimators, one function each in a registry,
are in `jaxfer/meta/feedback.py`:

* ``first_order``: the reference as coded. The student trains on hard
  argmax labels; the teacher term is ``d * CE(z_strong, argmax z)`` with
  ``d = stopgrad(L_old - L_new)`` (or new - old, MPL-pytorch HEAD).
* ``score_function``: labels sampled from the teacher; the same labels train
  the student and enter ``stopgrad(L_old - L_new) * sum_i CE``: an unbiased
  estimate of the exact meta-gradient (tested by enumeration).
* ``exact``: soft labels; `jax.grad` of the student's labeled loss after K
  unrolled optimizer updates (`jaxfer.meta.unroll`).
* ``exact_jvp`` (K = 1): the same gradient from one student JVP, with no
  second-order reverse pass: with v = grad L_l(θS'), w = (dU/dg)^T v (the
  VJP of the real optax update) and u = J w (student logits' JVP at θS),
  grad = grad_z of -(1-alpha) mean_i q_i(z) . stopgrad(u_i).

Every function takes `axis_name` for pmap/shard_map (losses, gradients and
the inner student gradient are averaged over it). The loop's method, which
adds the teacher's own losses and the optimizer updates, is
`jaxfer/methods/face2exp.py`.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxfer.core import losses
from jaxfer.core import parallel
from jaxfer.meta import unroll
from jaxfer.models import net as net_lib


@dataclasses.dataclass(frozen=True)
class Student:
  """What every estimator shares: how the student learns from the
  teacher's labels. Built from `config.face2exp` (and the run's
  label_smoothing) by `jaxfer.methods.face2exp.statics`; the fields and
  their defaults are defined in `jaxfer/core/defaults.py` only.

  Attributes:
    label_smoothing: alpha of the student's smoothed targets.
    same_bn_batch: L_new's forward on [labeled; strong] (else [labeled]).
    label_view: the teacher view ("weak" or "strong") labelling the
      student's strong views.
    pseudo_temperature: soft or sampled labels are softmax(z / T).
  """

  label_smoothing: float
  same_bn_batch: bool
  label_view: str
  pseudo_temperature: float


@dataclasses.dataclass(frozen=True)
class Unroll:
  """How the student's K updates are unrolled: `exact`'s own section
  (`config.face2exp.exact`, field for field); the other estimators take
  one plain update (`ONE_STEP`).

  Attributes:
    unroll_steps: K student updates.
    remat: jax.checkpoint per unroll segment.
    segment: student steps per remat segment.
    scan: lax.scan over segments (else a Python loop).
  """

  unroll_steps: int
  remat: bool
  segment: int
  scan: bool


ONE_STEP = Unroll(unroll_steps=1, remat=False, segment=1, scan=False)


def check(hp: Student) -> None:
  """Clear errors for inconsistent statics."""
  if hp.label_view not in ("weak", "strong"):
    raise ValueError(
      f"config.face2exp.label_view must be one of "
      f"('weak', 'strong'), got {hp.label_view!r}"
    )


def teacher_logits(params, batch_stats, batch, *, apply_fn):
  """Teacher logits on [labeled; weak; strong] (one train-mode forward).

  Returns ({"labeled", "weak", "strong"}, new batch_stats).
  """
  x = batch["image"]
  xw, xs = batch["unlabeled_weak"], batch["unlabeled_strong"]
  z, _, stats = net_lib.forward(
    apply_fn, params, batch_stats, jnp.concatenate([x, xw, xs]), train=True
  )
  b, n = x.shape[0], xw.shape[0]
  return {"labeled": z[:b], "weak": z[b : b + n], "strong": z[b + n :]}, stats


def uda_loss(
  z_weak, z_strong, *, temperature: float, threshold: float, mask: bool
):
  """UDA consistency: CE(softmax(stopgrad(z_weak)/T), z_strong).

  Returns (loss, fraction of examples whose max probability >= threshold).
  """
  q = jax.nn.softmax(jax.lax.stop_gradient(z_weak) / temperature)
  confident = (jnp.max(q, -1) >= threshold).astype(jnp.float32)
  ce = losses.soft_xent(z_strong, q)
  return losses.masked_mean(ce, confident if mask else None), confident.mean()


def _student_loss(params, batch_stats, batch, *, apply_fn, alpha: float):
  """The student's loss on (smoothed) targets for the strong views, from a
  forward on [labeled; strong] (as the reference: BatchNorm sees both)."""
  x, xu = batch["image"], batch["unlabeled"]
  s, _, stats = net_lib.forward(
    apply_fn, params, batch_stats, jnp.concatenate([x, xu]), train=True
  )
  s_l, s_u = s[: x.shape[0]], s[x.shape[0] :]
  loss = jnp.mean(losses.soft_xent(s_u, losses.smooth(batch["target"], alpha)))
  return loss, (stats, s_l)


def student_updates(
  student: unroll.Inner,
  batch,
  targets,
  *,
  apply_fn,
  tx,
  hp: Student,
  unroll_as: Unroll,
  axis_name=None,
):
  """K = `unroll_as.unroll_steps` real optimizer updates of the student on
  K chunks of the strong views (and the same labeled batch each time).

  Returns (new student, (losses [K], labeled logits [K, B, C])).
  """
  k = unroll_as.unroll_steps
  xu = batch["unlabeled_strong"]
  if xu.shape[0] % k:
    raise ValueError(
      f"{xu.shape[0]} unlabeled images per device do not "
      f"split into {k} unrolled student steps"
    )
  # Inner step t takes rows t, t + K, t + 2K, ...: on any device count the
  # global batch splits into the same K chunks.
  chunk = lambda a: jnp.swapaxes(
    a.reshape((a.shape[0] // k, k) + a.shape[1:]), 0, 1
  )
  loss_fn = functools.partial(
    _student_loss, apply_fn=apply_fn, alpha=hp.label_smoothing
  )
  step = lambda c, xs: unroll.train_step(
    c,
    {"image": batch["image"], **xs},
    loss_fn=loss_fn,
    tx=tx,
    axis_name=axis_name,
  )
  return unroll.unroll(
    step,
    student,
    {"unlabeled": chunk(xu), "target": chunk(targets)},
    remat=unroll_as.remat,
    segment=unroll_as.segment,
    scan=unroll_as.scan,
  )


def labeled_loss(
  params, batch_stats, batch, *, apply_fn, same_bn_batch: bool = False
):
  """The student's labeled cross-entropy L_l (train-mode forward, its new
  BatchNorm statistics discarded), on [labeled] or [labeled; strong]."""
  x = batch["image"]
  if same_bn_batch:
    x = jnp.concatenate([x, batch["unlabeled_strong"]])
  logits, _, _ = net_lib.forward(apply_fn, params, batch_stats, x, train=True)
  return jnp.mean(
    losses.xent(logits[: batch["image"].shape[0]], batch["label"])
  )


def objective_for_targets(
  targets,
  student: unroll.Inner,
  batch,
  *,
  apply_fn,
  tx,
  hp: Student,
  unroll_as: Unroll,
  axis_name=None,
):
  """L_l(θS^(K)): the student's labeled loss after K updates on `targets`
  (a distribution per strong view), unrolled as `unroll_as`.

  Returns (objective, (new student, (student losses, labeled logits))).
  """
  new, ys = student_updates(
    student,
    batch,
    targets,
    apply_fn=apply_fn,
    tx=tx,
    hp=hp,
    unroll_as=unroll_as,
    axis_name=axis_name,
  )
  l_new = labeled_loss(
    new.params,
    new.batch_stats,
    batch,
    apply_fn=apply_fn,
    same_bn_batch=hp.same_bn_batch,
  )
  return parallel.pmean(l_new, axis_name), (new, ys)


def meta_objective(z, student: unroll.Inner, batch, **kw):
  """The exact bilevel objective as a function of the teacher's logits: the
  soft pseudo-labels are softmax(z[label_view] / T); `kw` are
  `objective_for_targets`'s (apply_fn, tx, hp, unroll_as, axis_name)."""
  hp = kw["hp"]
  q = jax.nn.softmax(z[hp.label_view] / hp.pseudo_temperature)
  return objective_for_targets(q, student, batch, **kw)
