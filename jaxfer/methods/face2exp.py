"""Meta-Face2Exp: teacher ("base network"), student ("adaptation network")
and circuit feedback (`jaxfer.meta.mpl`), one pure step for the loop.

The state holds both networks (and the student's EMA and finetune
optimizer); `meta_step` updates both with the feedback named by
`config.face2exp.feedback`; after `total_steps - finetune.steps` steps
`finetune_step` trains the student alone on the labeled batch (the
reference's finetune stage). Evaluated: the student (its EMA first when
there is one; checkpoints are selected by the first) and the teacher.
"""

from collections.abc import Callable
import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp

from jaxfer.core import losses
from jaxfer.core import optim
from jaxfer.core import parallel
from jaxfer.core import statics as statics_lib
from jaxfer.meta import feedback as feedback_lib
from jaxfer.meta import mpl
from jaxfer.meta import unroll
from jaxfer.methods import base
from jaxfer.methods import supervised
from jaxfer.models import net as net_lib


@flax.struct.dataclass
class State:
  step: jax.Array
  teacher: net_lib.Net
  student: net_lib.Net
  finetune_opt: Any = None  # the student's finetune optimizer state


def _student_net(old: net_lib.Net, new: unroll.Inner, decay: float, step):
  ema = old.ema
  if ema is not None:
    ema = optim.ema_variables(ema, new.params, new.batch_stats, decay, step)
  return net_lib.Net(new.params, new.batch_stats, new.opt_state, ema)


@dataclasses.dataclass(frozen=True)
class Statics:
  """A Meta-Face2Exp step's statics, built from the config by `statics`
  (defaults and meanings: jaxfer/core/defaults.py).

  Attributes:
    student: what every feedback estimator shares (`mpl.Student`).
    feedback: the bound estimator (`jaxfer.meta.feedback.bind`).
    uda: `config.face2exp.uda` (weight, steps, temperature, threshold,
      mask).
    meta_weight: weight of the feedback term.
    label_smoothing: the teacher's supervised loss's (and the student's).
    ema_decay: the student's EMA (0: none).
  """

  student: mpl.Student
  feedback: Callable
  uda: Any
  meta_weight: float
  label_smoothing: float
  ema_decay: float


def meta_step(
  state: State,
  batch,
  rng,
  *,
  apply_fn,
  teacher_tx,
  student_tx,
  hp: Statics,
  axis_name=None,
):
  """One teacher and one (or K) student updates with feedback. Pure.

  Args:
    state: the State.
    batch: {"image", "label", "unlabeled_weak", "unlabeled_strong"}.
    rng: the run's base key (folded with the step; the same on every
      device: see `jaxfer.meta.feedback.sample_labels`).
    apply_fn: the model's `apply` (teacher and student share it).
    teacher_tx, student_tx: their optax transformations.
    hp: the statics.
    axis_name: under pmap/shard_map, the mapped data axis.
  """
  rng = parallel.step_rng(rng, state.step)
  teacher, student = state.teacher, state.student
  fwd = lambda p: mpl.teacher_logits(
    p, teacher.batch_stats, batch, apply_fn=apply_fn
  )
  z, t_vjp, t_stats = jax.vjp(fwd, teacher.params, has_aux=True)
  inner = unroll.Inner(student.params, student.batch_stats, student.opt_state)
  uda = hp.uda
  w_u = uda.weight * jnp.minimum(
    1.0, (state.step + 1).astype(jnp.float32) / max(uda.steps, 1)
  )

  def teacher_loss(z):
    l_sup = jnp.mean(
      losses.xent(z["labeled"], batch["label"], alpha=hp.label_smoothing)
    )
    l_uda, mask_rate = mpl.uda_loss(
      z["weak"],
      z["strong"],
      temperature=uda.temperature,
      threshold=uda.threshold,
      mask=uda.mask,
    )
    fb, (new, m) = hp.feedback(
      z,
      inner,
      batch,
      rng,
      apply_fn=apply_fn,
      tx=student_tx,
      axis_name=axis_name,
    )
    total = l_sup + w_u * l_uda + hp.meta_weight * fb
    return total, (
      new,
      {
        **m,
        "l_sup": l_sup,
        "l_uda": l_uda,
        "uda_mask_rate": mask_rate,
        "feedback": fb,
      },
    )

  (t_loss, (new, m)), g_z = jax.value_and_grad(teacher_loss, has_aux=True)(z)
  (t_grads,) = t_vjp(g_z)
  m = {
    **m,
    "teacher_loss": t_loss,
    "teacher_accuracy": losses.accuracy(z["labeled"], batch["label"]),
  }
  t_grads, m = parallel.pmean((t_grads, m), axis_name)
  teacher = net_lib.apply_updates(
    teacher, t_grads, t_stats, teacher_tx, ema_decay=0.0, step=state.step
  )
  student = _student_net(student, new, hp.ema_decay, state.step)
  m.update(
    loss=m["teacher_loss"] + m["student_loss"],
    uda_weight=w_u,
  )
  return State(state.step + 1, teacher, student, state.finetune_opt), m


def finetune_step(
  state: State,
  batch,
  rng,
  *,
  apply_fn,
  tx,
  hp: Statics,
  axis_name=None,
):
  """The finetune stage: the student alone on the labeled batch. Its
  metrics are its own (the loop ends a row where the phase changes)."""
  del rng
  (loss, (_, stats)), grads = jax.value_and_grad(
    supervised.loss_fn, has_aux=True
  )(
    state.student.params,
    state.student.batch_stats,
    batch,
    apply_fn=apply_fn,
    label_smoothing=hp.label_smoothing,
  )
  grads, loss = parallel.pmean((grads, loss), axis_name)
  s = state.student
  carry = unroll.Inner(s.params, s.batch_stats, state.finetune_opt)
  new = unroll.apply_tx(tx, carry, grads, stats)
  student = _student_net(
    s,
    unroll.Inner(new.params, new.batch_stats, s.opt_state),
    hp.ema_decay,
    state.step,
  )
  m = {"loss": loss, "student_loss": loss}
  return State(state.step + 1, state.teacher, student, new.opt_state), m


def statics(config) -> Statics:
  """The statics of `config.face2exp` (and label_smoothing, ema_decay):
  each section read as it is, no field renamed or given a default here."""
  f = config.face2exp
  student = statics_lib.from_section(
    mpl.Student,
    f,
    where="config.face2exp",
    label_smoothing=config.label_smoothing,
  )
  return Statics(
    student=student,
    feedback=feedback_lib.bind(f.feedback, student, f),
    uda=f.uda.copy_and_resolve_references(),
    meta_weight=f.meta_weight,
    label_smoothing=config.label_smoothing,
    ema_decay=config.ema_decay,
  )


def _scaled(cfg, k: int):
  """An optimizer config whose step counts are in student updates."""
  cfg = cfg.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.warmup_steps = cfg.warmup_steps * k
    cfg.wait_steps = cfg.wait_steps * k
  return cfg


def build(config, model, run: base.Run) -> base.Method:
  """The face2exp Method: `run.total_steps` = meta steps + finetune steps."""
  if not config.mu:
    raise ValueError(
      "method 'face2exp' needs unlabeled faces: set "
      "config.mu > 0 (unlabeled images per labeled one)"
    )
  hp = statics(config)
  f = config.face2exp
  ft_steps = f.finetune.steps
  main_steps = run.total_steps - ft_steps
  if main_steps < 1:
    raise ValueError(
      f"config.face2exp.finetune.steps={ft_steps} leaves no "
      f"meta steps of config.total_steps={run.total_steps}"
    )
  k = feedback_lib.student_steps(f.feedback, f)
  teacher_tx, t_sched = optim.build(config.optimizer, main_steps)
  student_tx, s_sched = optim.build(
    _scaled(f.student_optimizer, k), main_steps * k
  )
  ft_tx, ft_sched = (
    optim.build(f.finetune, ft_steps) if ft_steps else (None, None)
  )
  ema = hp.ema_decay > 0

  def init(rng, images):
    rt, rs = jax.random.split(rng)
    student = net_lib.init_net(rs, model, images, student_tx, ema=ema)
    return State(
      jnp.int32(0),
      net_lib.init_net(rt, model, images, teacher_tx, ema=False),
      student,
      ft_tx.init(student.params) if ft_steps else None,
    )

  meta = functools.partial(
    meta_step,
    apply_fn=model.apply,
    teacher_tx=teacher_tx,
    student_tx=student_tx,
    hp=hp,
    axis_name=run.axis_name,
  )

  with_lrs = functools.partial(
    base.with_lrs, teacher_lr=t_sched, student_lr=lambda t: s_sched(t * k)
  )

  tune = functools.partial(
    finetune_step,
    apply_fn=model.apply,
    tx=ft_tx,
    hp=hp,
    axis_name=run.axis_name,
  )

  def eval_variables(state):
    return {
      **base.evaluated(state.student, "student", "student_ema", ema_first=True),
      **base.evaluated(state.teacher, "teacher", ""),
    }

  stages = ((0, with_lrs(meta)),)
  if ft_steps:
    # The finetune schedule counts from the phase's first step.
    lr = lambda t: ft_sched(t - main_steps)
    stages += ((main_steps, base.with_lrs(tune, finetune_lr=lr)),)
  return base.Method(init, stages, eval_variables)
