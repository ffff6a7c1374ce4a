"""The feedback estimators of Meta-Face2Exp, one function each.

Each maps the teacher's logits `z` ({"labeled", "weak", "strong"}) to the
feedback term of the teacher's loss, whose gradient in `z` (pulled back
through the teacher's forward) is the teacher's feedback gradient, and
returns it with the updated student and metrics: ``(term, (new student,
metrics))``. They share the statics `mpl.Student` and take keywords of their
own only where they have some: first_order's `config.face2exp.first_order`
and exact's `config.face2exp.exact` (how its K student updates unroll; the
others take one).
`REGISTRY` maps `config.face2exp.feedback` to the function; see
../shared/REFERENCE.md section 1 and `jaxfer/meta/mpl.py` for the maths.

Every function takes `axis_name` for pmap/shard_map: losses, gradients and
the inner student gradient are averaged over it, and the global batch size
is its psum.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from jaxfer.core import losses
from jaxfer.core import parallel
from jaxfer.meta import mpl
from jaxfer.meta import unroll
from jaxfer.models import net as net_lib


def sample_labels(rng, logits, axis_name=None):
  """Labels ~ Cat(softmax(logits)) by the Gumbel-max trick, with the noise
  drawn for the global batch and sliced per device, so the draw is the same
  on one device, a mesh and under pmap."""
  n, c = logits.shape
  if axis_name is None:
    return jnp.argmax(logits + jax.random.gumbel(rng, (n, c)), -1)
  noise = jax.random.gumbel(rng, (n * jax.lax.psum(1, axis_name), c))
  noise = jax.lax.dynamic_slice_in_dim(
    noise, jax.lax.axis_index(axis_name) * n, n
  )
  return jnp.argmax(logits + noise, -1)


def _l_old(s_l, batch, axis_name):
  """The student's labeled loss before its update (from the logits of the
  joint forward of its first step)."""
  return parallel.pmean(
    jnp.mean(losses.xent(s_l[0], batch["label"])), axis_name
  )


def _global_rows(x, axis_name) -> int:
  return x.shape[0] * (1 if axis_name is None else jax.lax.psum(1, axis_name))


def _metrics(s_losses, s_l, l_new, batch, axis_name) -> dict:
  """The student's metrics of every estimator: its loss, L_old and L_new."""
  return {
    "student_loss": s_losses[0],
    "l_old": _l_old(s_l, batch, axis_name),
    "l_new": l_new,
  }


def _hard_label_objective(z, student, batch, labels, *, hp, **kw):
  """L_new, the new student and its metrics, for a student trained on hard
  `labels` (`kw`: apply_fn, tx, axis_name)."""
  num_classes = z[hp.label_view].shape[-1]
  l_new, (new, (s_losses, s_l)) = mpl.objective_for_targets(
    jax.nn.one_hot(labels, num_classes),
    student,
    batch,
    hp=hp,
    unroll_as=mpl.ONE_STEP,
    **kw,
  )
  return l_new, new, _metrics(s_losses, s_l, l_new, batch, kw["axis_name"])


def first_order(
  z,
  student,
  batch,
  rng,
  *,
  apply_fn,
  tx,
  hp,
  sign,
  argmax_view,
  reduce,
  axis_name=None,
  labels=None,
):
  """The reference as coded: the student trains on the argmax labels of
  `hp.label_view`; the term is ``d * CE(z_strong, argmax z[argmax_view])``
  with ``d = stopgrad(L_old - L_new)`` (`sign` "new_minus_old": MPL-pytorch
  HEAD), averaged (`reduce` "mean") or summed over the global batch.

  `labels` replaces the argmax (tests)."""
  del rng
  zs = jax.lax.stop_gradient(z)
  if labels is None:
    labels = jnp.argmax(zs[hp.label_view] / hp.pseudo_temperature, -1)
  kw = dict(apply_fn=apply_fn, tx=tx, hp=hp, axis_name=axis_name)
  l_new, new, metrics = _hard_label_objective(z, student, batch, labels, **kw)
  l_old = metrics["l_old"]
  d = (l_old - l_new) if sign == "old_minus_new" else (l_new - l_old)
  hard = jnp.argmax(zs[argmax_view], -1)
  ce = jnp.mean(losses.xent(z["strong"], hard))
  scale = _global_rows(z["strong"], axis_name) if reduce == "sum" else 1
  return d * scale * ce, (new, {**metrics, "d": d})


def score_function(
  z, student, batch, rng, *, apply_fn, tx, hp, axis_name=None, labels=None
):
  """Labels sampled from the teacher train the student and enter
  ``stopgrad(L_old - L_new) * sum_i CE``: an unbiased estimate of the exact
  meta-gradient (L_old as the baseline). `labels` replaces the draw
  (tests enumerate them)."""
  logits_v = jax.lax.stop_gradient(z[hp.label_view]) / hp.pseudo_temperature
  if labels is None:
    labels = sample_labels(rng, logits_v, axis_name)
  kw = dict(apply_fn=apply_fn, tx=tx, hp=hp, axis_name=axis_name)
  l_new, new, metrics = _hard_label_objective(z, student, batch, labels, **kw)
  d = metrics["l_old"] - l_new
  ce = jnp.mean(losses.xent(z[hp.label_view] / hp.pseudo_temperature, labels))
  return (
    d * _global_rows(logits_v, axis_name) * ce,
    (new, {**metrics, "d": d}),
  )


def exact(
  z,
  student,
  batch,
  rng,
  *,
  apply_fn,
  tx,
  hp,
  unroll_steps,
  remat,
  segment,
  scan,
  axis_name=None,
):
  """`jax.grad` of the student's labeled loss after `unroll_steps` real
  optimizer updates on the soft labels softmax(z[label_view] / T), unrolled
  with `remat`, `segment` and `scan` (`mpl.Unroll`)."""
  del rng
  l_new, (new, (s_losses, s_l)) = mpl.meta_objective(
    z,
    student,
    batch,
    apply_fn=apply_fn,
    tx=tx,
    hp=hp,
    unroll_as=mpl.Unroll(unroll_steps, remat, segment, scan),
    axis_name=axis_name,
  )
  l_new_value = jax.lax.stop_gradient(l_new)
  return l_new, (new, _metrics(s_losses, s_l, l_new_value, batch, axis_name))


def _jvp_student(
  student: unroll.Inner, batch, q, *, apply_fn, tx, hp, axis_name
):
  """Student update on soft labels q, and u = J w for the closed form."""
  loss_fn = functools.partial(
    mpl._student_loss,  # pylint: disable=protected-access
    apply_fn=apply_fn,
    alpha=hp.label_smoothing,
  )
  sbatch = {
    "image": batch["image"],
    "unlabeled": batch["unlabeled_strong"],
    "target": q,
  }
  (s_loss, (stats, s_l)), g = jax.value_and_grad(loss_fn, has_aux=True)(
    student.params, student.batch_stats, sbatch
  )
  g, s_loss = parallel.pmean((g, s_loss), axis_name)
  # The real optax update; its VJP maps dL/dθS' to dL/dg exactly (any
  # optimizer, momentum and Nesterov included: no hand-scaled lr).
  update = lambda g: tx.update(g, student.opt_state, student.params)
  updates, update_vjp, opt_state = jax.vjp(update, g, has_aux=True)
  new = unroll.Inner(
    optax.apply_updates(student.params, updates), stats, opt_state
  )
  l_new, v = jax.value_and_grad(mpl.labeled_loss)(
    new.params,
    new.batch_stats,
    batch,
    apply_fn=apply_fn,
    same_bn_batch=hp.same_bn_batch,
  )
  l_new, v = parallel.pmean((l_new, v), axis_name)
  (w,) = update_vjp(v)
  # u = J w: the student's strong-view logits (the same joint forward as
  # its loss, so BatchNorm in train mode is exact too) pushed along w.
  b = batch["image"].shape[0]
  xs = jnp.concatenate([batch["image"], batch["unlabeled_strong"]])
  fwd = lambda p: net_lib.forward(
    apply_fn, p, student.batch_stats, xs, train=True
  )[0][b:]
  _, u = jax.jvp(fwd, (student.params,), (w,))
  return new, (s_loss[None], s_l[None]), l_new, u


def exact_jvp(z, student, batch, rng, *, apply_fn, tx, hp, axis_name=None):
  """`exact` at K = 1 from one student JVP, with no second-order reverse
  pass: with v = grad L_l(θS'), w = (dU/dg)^T v (the VJP of the real optax
  update) and u = J w (the student logits' JVP at θS), the gradient is that
  of -(1-alpha) mean_i q_i(z) . stopgrad(u_i)."""
  del rng
  q = jax.nn.softmax(
    jax.lax.stop_gradient(z[hp.label_view]) / hp.pseudo_temperature
  )
  new, (s_losses, s_l), l_new, u = _jvp_student(
    student, batch, q, apply_fn=apply_fn, tx=tx, hp=hp, axis_name=axis_name
  )
  q_z = jax.nn.softmax(z[hp.label_view] / hp.pseudo_temperature)
  surrogate = -(1 - hp.label_smoothing) * jnp.mean(
    jnp.sum(q_z * jax.lax.stop_gradient(u), -1)
  )
  term = l_new + surrogate - jax.lax.stop_gradient(surrogate)
  return term, (new, _metrics(s_losses, s_l, l_new, batch, axis_name))


REGISTRY = {
  "first_order": first_order,
  "score_function": score_function,
  "exact": exact,
  "exact_jvp": exact_jvp,
}

# The allowed values of the estimators' own fields, by estimator (an
# estimator's own fields are the section `config.face2exp.<its name>`):
# a tuple of choices, or the least value of an integer field.
CHOICES = {
  "first_order": dict(
    sign=("old_minus_new", "new_minus_old"),
    argmax_view=("weak", "strong"),
    reduce=("mean", "sum"),
  ),
  "exact": dict(unroll_steps=1, segment=1),
}


def student_steps(name: str, sections) -> int:
  """The student updates per meta step of estimator `name`: its section's
  `unroll_steps` where it has one (exact), else 1."""
  own = sections[name] if name in sections else {}
  return own.get("unroll_steps", 1)


def bind(name: str, hp: mpl.Student, sections):
  """The estimator `name` with its statics bound: ``(z, student, batch, rng,
  *, apply_fn, tx, axis_name) -> (term, (new student, metrics))``.

  Args:
    name: a key of REGISTRY (`config.face2exp.feedback`).
    hp: the shared statics.
    sections: `config.face2exp` (or a dict): an estimator with fields of its
      own reads them from its section `sections[name]`, checked against
      `CHOICES[name]`; one without has no such section.
  """
  if name not in REGISTRY:
    raise ValueError(
      f"config.face2exp.feedback must be one of {tuple(REGISTRY)}, got {name!r}"
    )
  mpl.check(hp)
  own = dict(sections[name]) if name in sections else {}
  for field, allowed in CHOICES.get(name, {}).items():
    if isinstance(allowed, int):
      if own[field] < allowed:
        raise ValueError(
          f"config.face2exp.{name}.{field}={own[field]} must be >= {allowed}"
        )
    elif own[field] not in allowed:
      raise ValueError(
        f"config.face2exp.{name}.{field} must be one "
        f"of {allowed}, got {own[field]!r}"
      )
  return functools.partial(REGISTRY[name], hp=hp, **own)
