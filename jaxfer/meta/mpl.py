"""Meta Pseudo Labels feedback, four ways: the math of Meta-Face2Exp.

A teacher (the "base network") learns from labeled FER data (cross-entropy)
and unlabeled faces (UDA consistency between a weak and a strong view); a
student (the "adaptation network") learns from the teacher's pseudo-labels
of the strong views; the teacher is also trained by the student's result on
the labeled batch, the *feedback*. See ../shared/REFERENCE.md section 1.

The teacher's forward runs once on [labeled; weak; strong]; everything the
teacher learns from is a function of those logits `z`, so its gradient is one
`jax.vjp` pull-back of d(loss)/dz. The feedback modes (`hp.feedback`):

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
import optax

from jaxfer.core import losses
from jaxfer.core import parallel
from jaxfer.meta import unroll
from jaxfer.models import net as net_lib

FEEDBACKS = ("first_order", "score_function", "exact", "exact_jvp")


@dataclasses.dataclass(frozen=True)
class Hyper:
  """The statics of a Meta-Face2Exp step (see jaxfer/core/defaults.py)."""
  feedback: str = "exact_jvp"
  unroll_steps: int = 1
  remat: bool = False
  segment: int = 1
  scan: bool = False
  label_smoothing: float = 0.0
  label_view: str = "weak"           # teacher view giving student labels
  pseudo_temperature: float = 1.0
  uda_weight: float = 1.0
  uda_steps: int = 1
  uda_temperature: float = 1.0
  uda_threshold: float = 0.95
  uda_mask: bool = False             # Face2Exp: no mask (rate logged)
  meta_weight: float = 1.0
  sign: str = "old_minus_new"        # first_order: or "new_minus_old"
  argmax_view: str = "strong"        # first_order: view of the argmax
  reduce: str = "mean"               # first_order: "mean" or "sum"
  same_bn_batch: bool = False        # L_new forward on [labeled; strong]
  ema_decay: float = 0.0


def check(hp: Hyper) -> None:
  """Clear errors for inconsistent statics."""
  if hp.feedback not in FEEDBACKS:
    raise ValueError(f"config.face2exp.feedback must be one of {FEEDBACKS}, "
                     f"got {hp.feedback!r}")
  if hp.unroll_steps < 1 or (hp.unroll_steps > 1 and hp.feedback != "exact"):
    raise ValueError(f"config.face2exp.unroll_steps={hp.unroll_steps}: only "
                     "feedback='exact' unrolls more than 1 student step")
  for name, value, allowed in (
      ("label_view", hp.label_view, ("weak", "strong")),
      ("argmax_view", hp.argmax_view, ("weak", "strong")),
      ("sign", hp.sign, ("old_minus_new", "new_minus_old")),
      ("reduce", hp.reduce, ("mean", "sum"))):
    if value not in allowed:
      raise ValueError(f"config.face2exp.{name} must be one of {allowed}, "
                       f"got {value!r}")


def teacher_logits(params, batch_stats, batch, *, apply_fn):
  """Teacher logits on [labeled; weak; strong] (one train-mode forward).

  Returns ({"labeled", "weak", "strong"}, new batch_stats).
  """
  x = batch["image"]
  xw, xs = batch["unlabeled_weak"], batch["unlabeled_strong"]
  z, _, stats = net_lib.forward(apply_fn, params, batch_stats,
                               jnp.concatenate([x, xw, xs]), train=True)
  b, n = x.shape[0], xw.shape[0]
  return {"labeled": z[:b], "weak": z[b:b + n], "strong": z[b + n:]}, stats


def uda_loss(z_weak, z_strong, *, temperature: float, threshold: float,
             mask: bool):
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
  s, _, stats = net_lib.forward(apply_fn, params, batch_stats,
                               jnp.concatenate([x, xu]), train=True)
  s_l, s_u = s[:x.shape[0]], s[x.shape[0]:]
  loss = jnp.mean(losses.soft_xent(s_u, losses.smooth(batch["target"],
                                                      alpha)))
  return loss, (stats, s_l)


def student_updates(student: unroll.Inner, batch, targets, *, apply_fn, tx,
                    hp: Hyper, axis_name=None):
  """K real optimizer updates of the student on K chunks of the strong
  views (and the same labeled batch each time).

  Returns (new student, (losses [K], labeled logits [K, B, C])).
  """
  k = hp.unroll_steps
  xu = batch["unlabeled_strong"]
  if xu.shape[0] % k:
    raise ValueError(f"{xu.shape[0]} unlabeled images per device do not "
                     f"split into {k} unrolled student steps")
  # Inner step t takes rows t, t + K, t + 2K, ...: on any device count the
  # global batch splits into the same K chunks.
  chunk = lambda a: jnp.swapaxes(
      a.reshape((a.shape[0] // k, k) + a.shape[1:]), 0, 1)
  loss_fn = functools.partial(_student_loss, apply_fn=apply_fn,
                              alpha=hp.label_smoothing)
  step = lambda c, xs: unroll.train_step(
      c, {"image": batch["image"], **xs}, loss_fn=loss_fn, tx=tx,
      axis_name=axis_name)
  return unroll.unroll(step, student, {"unlabeled": chunk(xu),
                                       "target": chunk(targets)},
                       remat=hp.remat, segment=hp.segment, scan=hp.scan)


def labeled_loss(params, batch_stats, batch, *, apply_fn,
                 same_bn_batch: bool = False):
  """The student's labeled cross-entropy L_l (train-mode forward, its new
  BatchNorm statistics discarded), on [labeled] or [labeled; strong]."""
  x = batch["image"]
  if same_bn_batch:
    x = jnp.concatenate([x, batch["unlabeled_strong"]])
  logits, _, _ = net_lib.forward(apply_fn, params, batch_stats, x, train=True)
  return jnp.mean(losses.xent(logits[:batch["image"].shape[0]],
                              batch["label"]))


def objective_for_targets(targets, student: unroll.Inner, batch, *,
                          apply_fn, tx, hp: Hyper, axis_name=None):
  """L_l(θS^(K)): the student's labeled loss after K updates on `targets`
  (a distribution per strong view).

  Returns (objective, (new student, (student losses, labeled logits))).
  """
  new, ys = student_updates(student, batch, targets, apply_fn=apply_fn,
                            tx=tx, hp=hp, axis_name=axis_name)
  l_new = labeled_loss(new.params, new.batch_stats, batch, apply_fn=apply_fn,
                       same_bn_batch=hp.same_bn_batch)
  return parallel.pmean(l_new, axis_name), (new, ys)


def meta_objective(z, student: unroll.Inner, batch, *, apply_fn, tx,
                   hp: Hyper, axis_name=None):
  """The exact bilevel objective as a function of the teacher's logits: the
  soft pseudo-labels are softmax(z[label_view] / T)."""
  q = jax.nn.softmax(z[hp.label_view] / hp.pseudo_temperature)
  return objective_for_targets(q, student, batch, apply_fn=apply_fn, tx=tx,
                               hp=hp, axis_name=axis_name)


def _jvp_student(student: unroll.Inner, batch, q, *, apply_fn, tx, hp,
                 axis_name):
  """Student update on soft labels q, and u = J w for the closed form."""
  loss_fn = functools.partial(_student_loss, apply_fn=apply_fn,
                              alpha=hp.label_smoothing)
  sbatch = {"image": batch["image"], "unlabeled": batch["unlabeled_strong"],
            "target": q}
  (s_loss, (stats, s_l)), g = jax.value_and_grad(loss_fn, has_aux=True)(
      student.params, student.batch_stats, sbatch)
  g, s_loss = parallel.pmean((g, s_loss), axis_name)
  # The real optax update; its VJP maps dL/dθS' to dL/dg exactly (any
  # optimizer, momentum and Nesterov included: no hand-scaled lr).
  update = lambda g: tx.update(g, student.opt_state, student.params)
  updates, update_vjp, opt_state = jax.vjp(update, g, has_aux=True)
  new = unroll.Inner(optax.apply_updates(student.params, updates), stats,
                     opt_state)
  l_new, v = jax.value_and_grad(labeled_loss)(
      new.params, new.batch_stats, batch, apply_fn=apply_fn,
      same_bn_batch=hp.same_bn_batch)
  l_new, v = parallel.pmean((l_new, v), axis_name)
  (w,) = update_vjp(v)
  # u = J w: the student's strong-view logits (the same joint forward as
  # its loss, so BatchNorm in train mode is exact too) pushed along w.
  b = batch["image"].shape[0]
  xs = jnp.concatenate([batch["image"], batch["unlabeled_strong"]])
  fwd = lambda p: net_lib.forward(apply_fn, p, student.batch_stats, xs,
                                 train=True)[0][b:]
  _, u = jax.jvp(fwd, (student.params,), (w,))
  return new, (s_loss[None], s_l[None]), l_new, u


def sample_labels(rng, logits, axis_name=None):
  """Labels ~ Cat(softmax(logits)) by the Gumbel-max trick, with the noise
  drawn for the global batch and sliced per device, so the draw is the same
  on one device, a mesh and under pmap."""
  n, c = logits.shape
  if axis_name is None:
    return jnp.argmax(logits + jax.random.gumbel(rng, (n, c)), -1)
  noise = jax.random.gumbel(rng, (n * jax.lax.psum(1, axis_name), c))
  noise = jax.lax.dynamic_slice_in_dim(
      noise, jax.lax.axis_index(axis_name) * n, n)
  return jnp.argmax(logits + noise, -1)


def feedback(z, student: unroll.Inner, batch, rng, *, apply_fn, tx,
             hp: Hyper, axis_name=None, labels=None):
  """The feedback term of the teacher's loss, as a function of its logits.

  Args:
    z: the teacher's logits {"labeled", "weak", "strong"}.
    student: the student before its update.
    batch: the training batch.
    rng: draws the score-function labels.
    apply_fn, tx, hp, axis_name: as in `meta_step`.
    labels: hard pseudo-labels to use instead of the argmax or the draw
      (first_order, score_function; tests enumerate them).

  Returns (term, (new student, metrics)). Its gradient in `z`, pulled back
  through the teacher's forward, is the teacher's feedback gradient.
  """
  if hp.feedback == "exact":
    l_new, (new, (s_losses, s_l)) = meta_objective(
        z, student, batch, apply_fn=apply_fn, tx=tx, hp=hp,
        axis_name=axis_name)
    l_old = parallel.pmean(jnp.mean(losses.xent(s_l[0], batch["label"])),
                           axis_name)
    return l_new, (new, {"student_loss": s_losses[0], "l_old": l_old,
                         "l_new": jax.lax.stop_gradient(l_new)})
  zs = jax.lax.stop_gradient(z)
  logits_v = zs[hp.label_view] / hp.pseudo_temperature
  num_classes = logits_v.shape[-1]
  n_global = logits_v.shape[0] * (1 if axis_name is None else
                                  jax.lax.psum(1, axis_name))
  if hp.feedback == "exact_jvp":
    q = jax.nn.softmax(logits_v)
    new, (s_losses, s_l), l_new, u = _jvp_student(
        student, batch, q, apply_fn=apply_fn, tx=tx, hp=hp,
        axis_name=axis_name)
    q_z = jax.nn.softmax(z[hp.label_view] / hp.pseudo_temperature)
    surrogate = -(1 - hp.label_smoothing) * jnp.mean(
        jnp.sum(q_z * jax.lax.stop_gradient(u), -1))
    term = l_new + surrogate - jax.lax.stop_gradient(surrogate)
  else:
    if labels is None and hp.feedback == "first_order":
      labels = jnp.argmax(logits_v, -1)
    elif labels is None:
      labels = sample_labels(rng, logits_v, axis_name)
    l_new, (new, (s_losses, s_l)) = objective_for_targets(
        jax.nn.one_hot(labels, num_classes), student, batch,
        apply_fn=apply_fn, tx=tx, hp=hp, axis_name=axis_name)
  l_old = parallel.pmean(jnp.mean(losses.xent(s_l[0], batch["label"])),
                         axis_name)
  metrics = {"student_loss": s_losses[0], "l_old": l_old, "l_new": l_new}
  if hp.feedback == "exact_jvp":
    return term, (new, metrics)
  if hp.feedback == "first_order":
    d = (l_old - l_new) if hp.sign == "old_minus_new" else (l_new - l_old)
    hard = jnp.argmax(zs[hp.argmax_view], -1)
    ce = jnp.mean(losses.xent(z["strong"], hard))
    scale = n_global if hp.reduce == "sum" else 1
    return d * scale * ce, (new, {**metrics, "d": d})
  d = l_old - l_new                    # score function, L_old as baseline
  ce = jnp.mean(losses.xent(z[hp.label_view] / hp.pseudo_temperature,
                            labels))
  return d * n_global * ce, (new, {**metrics, "d": d})
