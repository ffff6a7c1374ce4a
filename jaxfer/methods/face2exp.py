"""Meta-Face2Exp: Meta Pseudo Labels with circuit feedback, four ways.

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
  unrolled optimizer updates (`jaxfer.unroll`).
* ``exact_jvp`` (K = 1): the same gradient from one student JVP, with no
  second-order reverse pass: with v = grad L_l(θS'), w = (dU/dg)^T v (the
  VJP of the real optax update) and u = J w (student logits' JVP at θS),
  grad = grad_z of -(1-alpha) mean_i q_i(z) . stopgrad(u_i).

Every step takes `axis_name` for pmap/shard_map (losses, gradients and the
inner student gradient are averaged over it).
"""

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxfer import losses
from jaxfer import optim
from jaxfer import parallel
from jaxfer import unroll
from jaxfer.methods import common
from jaxfer.methods import supervised

FEEDBACKS = ("first_order", "score_function", "exact", "exact_jvp")


@flax.struct.dataclass
class State:
  step: jax.Array
  teacher: common.Net
  student: common.Net
  finetune_opt: Any = None     # the student's finetune optimizer state


@dataclasses.dataclass(frozen=True)
class Hyper:
  """The statics of a Meta-Face2Exp step (see jaxfer/defaults.py)."""
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
  z, _, stats = common.forward(apply_fn, params, batch_stats,
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
  s, _, stats = common.forward(apply_fn, params, batch_stats,
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
  logits, _, _ = common.forward(apply_fn, params, batch_stats, x, train=True)
  return jnp.mean(losses.xent(logits[:batch["image"].shape[0]],
                              batch["label"]))


def _pmean(x, axis_name):
  return x if axis_name is None else jax.lax.pmean(x, axis_name)


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
  return _pmean(l_new, axis_name), (new, ys)


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
  g, s_loss = _pmean((g, s_loss), axis_name)
  # The real optax update; its VJP maps dL/dθS' to dL/dg exactly (any
  # optimizer, momentum and Nesterov included: no hand-scaled lr).
  update = lambda g: tx.update(g, student.opt_state, student.params)
  updates, update_vjp, opt_state = jax.vjp(update, g, has_aux=True)
  new = unroll.Inner(optax.apply_updates(student.params, updates), stats,
                     opt_state)
  l_new, v = jax.value_and_grad(labeled_loss)(
      new.params, new.batch_stats, batch, apply_fn=apply_fn,
      same_bn_batch=hp.same_bn_batch)
  l_new, v = _pmean((l_new, v), axis_name)
  (w,) = update_vjp(v)
  # u = J w: the student's strong-view logits (the same joint forward as
  # its loss, so BatchNorm in train mode is exact too) pushed along w.
  b = batch["image"].shape[0]
  xs = jnp.concatenate([batch["image"], batch["unlabeled_strong"]])
  fwd = lambda p: common.forward(apply_fn, p, student.batch_stats, xs,
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
    l_old = _pmean(jnp.mean(losses.xent(s_l[0], batch["label"])), axis_name)
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
  l_old = _pmean(jnp.mean(losses.xent(s_l[0], batch["label"])), axis_name)
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


def _student_net(old: common.Net, new: unroll.Inner, decay: float):
  ema = old.ema
  if ema is not None:
    ema = {"params": optim.ema_update(ema["params"], new.params, decay),
           "batch_stats": new.batch_stats}
  return common.Net(new.params, new.batch_stats, new.opt_state, ema)


def meta_step(state: State, batch, rng, *, apply_fn, teacher_tx, student_tx,
              hp: Hyper, axis_name=None):
  """One teacher and one (or K) student updates with feedback. Pure.

  Args:
    state: the State.
    batch: {"image", "label", "unlabeled_weak", "unlabeled_strong"}.
    rng: the run's base key (folded with the step; the same on every
      device: see `sample_labels`).
    apply_fn: the model's `apply` (teacher and student share it).
    teacher_tx, student_tx: their optax transformations.
    hp: the statics.
    axis_name: under pmap/shard_map, the mapped data axis.
  """
  rng = parallel.step_rng(rng, state.step)
  teacher, student = state.teacher, state.student
  fwd = lambda p: teacher_logits(p, teacher.batch_stats, batch,
                                 apply_fn=apply_fn)
  z, t_vjp, t_stats = jax.vjp(fwd, teacher.params, has_aux=True)
  inner = unroll.Inner(student.params, student.batch_stats,
                       student.opt_state)
  w_u = hp.uda_weight * jnp.minimum(
      1.0, (state.step + 1).astype(jnp.float32) / max(hp.uda_steps, 1))

  def teacher_loss(z):
    l_sup = jnp.mean(losses.xent(z["labeled"], batch["label"],
                                 alpha=hp.label_smoothing))
    l_uda, mask_rate = uda_loss(z["weak"], z["strong"],
                                temperature=hp.uda_temperature,
                                threshold=hp.uda_threshold, mask=hp.uda_mask)
    fb, (new, m) = feedback(z, inner, batch, rng, apply_fn=apply_fn,
                            tx=student_tx, hp=hp, axis_name=axis_name)
    total = l_sup + w_u * l_uda + hp.meta_weight * fb
    return total, (new, {**m, "l_sup": l_sup, "l_uda": l_uda,
                         "uda_mask_rate": mask_rate, "feedback": fb})

  (t_loss, (new, m)), g_z = jax.value_and_grad(teacher_loss, has_aux=True)(z)
  (t_grads,) = t_vjp(g_z)
  m = {**m, "teacher_loss": t_loss,
       "teacher_accuracy": common.accuracy(z["labeled"], batch["label"])}
  t_grads, m = _pmean((t_grads, m), axis_name)
  teacher = common.apply_updates(teacher, t_grads, t_stats, teacher_tx,
                                 ema_decay=0.0)
  student = _student_net(student, new, hp.ema_decay)
  m.update(loss=m["teacher_loss"] + m["student_loss"], uda_weight=w_u,
           stage=jnp.float32(0))
  return State(state.step + 1, teacher, student, state.finetune_opt), m


def finetune_step(state: State, batch, rng, *, apply_fn, tx, hp: Hyper,
                  metric_keys, axis_name=None):
  """The finetune stage: the student alone on the labeled batch."""
  del rng
  (loss, (_, stats)), grads = jax.value_and_grad(
      supervised.loss_fn, has_aux=True)(
          state.student.params, state.student.batch_stats, batch,
          apply_fn=apply_fn, label_smoothing=hp.label_smoothing)
  grads, loss = _pmean((grads, loss), axis_name)
  s = state.student
  carry = unroll.Inner(s.params, s.batch_stats, state.finetune_opt)
  new = unroll.apply_tx(tx, carry, grads, stats)
  student = _student_net(s, unroll.Inner(new.params, new.batch_stats,
                                         s.opt_state), hp.ema_decay)
  m = dict.fromkeys(metric_keys, jnp.float32(0))
  m.update(loss=loss, student_loss=loss, stage=jnp.float32(1))
  return State(state.step + 1, state.teacher, student, new.opt_state), m


def hyper(config) -> Hyper:
  """The statics of `config.face2exp` (and label_smoothing, ema_decay)."""
  f = config.face2exp
  hp = Hyper(
      feedback=f.feedback, unroll_steps=f.unroll_steps, remat=f.remat,
      segment=f.segment, scan=f.scan,
      label_smoothing=config.label_smoothing, label_view=f.label_view,
      pseudo_temperature=f.pseudo_temperature, uda_weight=f.uda.weight,
      uda_steps=f.uda.steps, uda_temperature=f.uda.temperature,
      uda_threshold=f.uda.threshold, uda_mask=f.uda.mask,
      meta_weight=f.meta_weight, sign=f.first_order.sign,
      argmax_view=f.first_order.argmax_view, reduce=f.first_order.reduce,
      same_bn_batch=f.same_bn_batch, ema_decay=config.ema_decay)
  check(hp)
  return hp


def _scaled(cfg, k: int):
  """An optimizer config whose step counts are in student updates."""
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.warmup_steps = cfg.get("warmup_steps", 0) * k
    cfg.wait_steps = cfg.get("wait_steps", 0) * k
  return cfg


def build(config, model, total_steps: int, *,
          axis_name: str | None = None) -> common.Method:
  """The face2exp Method: `total_steps` = meta steps + finetune steps."""
  if not config.get("mu", 0):
    raise ValueError("method 'face2exp' needs unlabeled faces: set "
                     "config.mu > 0 (unlabeled images per labeled one)")
  hp = hyper(config)
  f = config.face2exp
  ft_steps = f.finetune.steps
  main_steps = total_steps - ft_steps
  if main_steps < 1:
    raise ValueError(f"config.face2exp.finetune.steps={ft_steps} leaves no "
                     f"meta steps of config.total_steps={total_steps}")
  k = hp.unroll_steps
  teacher_tx, t_sched = optim.build(config.optimizer, main_steps)
  student_tx, s_sched = optim.build(_scaled(f.student_optimizer, k),
                                    main_steps * k)
  ft_tx = optim.build(f.finetune, max(ft_steps, 1))[0] if ft_steps else None
  ema = hp.ema_decay > 0

  def init(rng, images):
    rt, rs = jax.random.split(rng)
    student = common.init_net(rs, model, images, student_tx, ema=ema)
    return State(jnp.int32(0),
                 common.init_net(rt, model, images, teacher_tx, ema=False),
                 student,
                 ft_tx.init(student.params) if ft_steps else None)

  meta = functools.partial(meta_step, apply_fn=model.apply,
                           teacher_tx=teacher_tx, student_tx=student_tx,
                           hp=hp, axis_name=axis_name)

  def step(state, batch, rng):
    if ft_steps:
      keys = jax.eval_shape(meta, state, batch, rng)[1].keys()
      tune = functools.partial(finetune_step, apply_fn=model.apply,
                               tx=ft_tx, hp=hp, metric_keys=tuple(keys),
                               axis_name=axis_name)
      state, m = jax.lax.cond(state.step < main_steps, meta, tune, state,
                              batch, rng)
    else:
      state, m = meta(state, batch, rng)
    return state, {**m, "teacher_lr": t_sched(state.step - 1),
                   "student_lr": s_sched((state.step - 1) * k)}

  def eval_variables(state):
    s = state.student
    out = {"student": common.variables(s.params, s.batch_stats),
           "teacher": common.variables(state.teacher.params,
                                       state.teacher.batch_stats)}
    if ema:
      out = {"student_ema": common.variables(**s.ema), **out}
    return out

  apply = lambda v, x: model.apply(v, x, train=False)
  return common.Method(init, step, eval_variables, apply)
