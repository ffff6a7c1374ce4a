"""Meta-Face2Exp: the feedback gradients are right (float64, tiny models).

* exact = central finite differences of the bilevel objective (K = 1, 3;
  SGD, heavy-ball and Nesterov momentum; with and without remat and scan);
* exact_jvp = exact at K = 1 (label smoothing, BatchNorm in train mode);
* score_function is unbiased: all 3^3 label draws enumerated;
* the sign: a teacher step along the feedback lowers the student's
  post-update labeled loss, the opposite step raises it.
"""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import optax
import pytest

from jaxfer.core import defaults
from jaxfer.loop import testing
from jaxfer.meta import feedback
from jaxfer.meta import mpl
from jaxfer.meta import unroll
from jaxfer.methods import face2exp

# first_order's and exact's own fields as the default config sets them.
FO = dict(defaults.base().face2exp.first_order)
EXACT = dict(defaults.base().face2exp.exact)


def _hp(**kw):
  """The estimators' shared statics of the default config, `kw` changed."""
  return dataclasses.replace(face2exp.statics(defaults.base()).student, **kw)


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def _optimizer(kind: str):
  return {
    "sgd": optax.sgd(0.3),
    "momentum": optax.sgd(0.3, momentum=0.9),
    "nesterov": optax.sgd(0.3, momentum=0.9, nesterov=True),
    "adam": optax.adam(0.05),
  }[kind]


def _problem(norm="batch", opt="sgd", unlabeled=6):
  """(model, teacher (params, stats), student Inner, batch, tx).

  The student's optimizer state is warmed by one update, so momentum
  traces are not zero."""
  model = testing.tiny_model(norm)
  teacher = testing.init_variables(model, jax.random.key(0))
  params, stats = testing.init_variables(model, jax.random.key(1))
  tx = _optimizer(opt)
  state = tx.init(params)
  warm = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
  _, state = tx.update(warm, state, params)
  batch = testing.tiny_meta_batch(unlabeled=unlabeled)
  return model, teacher, unroll.Inner(params, stats, state), batch, tx


def _steps(k: int) -> mpl.Unroll:
  """K plain student updates (no remat, no scan)."""
  return dataclasses.replace(mpl.ONE_STEP, unroll_steps=k)


def _objective(hp, model, teacher, student, batch, tx, k=1):
  """The bilevel objective f(θT) = L_l(θS^(K)(θT))."""

  def f(t_params):
    z, _ = mpl.teacher_logits(t_params, teacher[1], batch, apply_fn=model.apply)
    return mpl.meta_objective(
      z,
      student,
      batch,
      apply_fn=model.apply,
      tx=tx,
      hp=hp,
      unroll_as=_steps(k),
    )[0]

  return f


def _feedback_grad(
  mode, hp, model, teacher, student, batch, tx, labels=None, **own
):
  """(value, gradient in θT) of the feedback term of estimator `mode`,
  `own` changing the fields of its section."""
  sections = {"first_order": FO, "exact": EXACT}
  sections[mode] = {**sections.get(mode, {}), **own}
  fn = feedback.bind(mode, hp, sections)
  extra = {} if labels is None else {"labels": labels}

  def f(t_params):
    z, _ = mpl.teacher_logits(t_params, teacher[1], batch, apply_fn=model.apply)
    return fn(
      z, student, batch, jax.random.key(5), apply_fn=model.apply, tx=tx, **extra
    )[0]

  return jax.value_and_grad(f)(teacher[0])


def _max_diff(a, b):
  return max(
    float(jnp.max(jnp.abs(x - y)))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
  )


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov"])
def test_exact_matches_central_finite_differences(k, opt):
  model, teacher, student, batch, tx = _problem("batch", opt)
  hp = _hp(label_smoothing=0.1)
  f = _objective(hp, model, teacher, student, batch, tx, k)
  check_grads(
    f, (teacher[0],), order=1, modes=["rev"], eps=1e-5, atol=1e-7, rtol=1e-6
  )
  assert (
    float(
      jnp.abs(f(teacher[0]) - f(jax.tree.map(lambda p: p + 0.1, teacher[0])))
    )
    > 1e-4
  )  # θT matters


@pytest.mark.parametrize(
  "remat,scan,segment",
  [
    (True, False, 1),
    (False, True, 1),
    (True, True, 1),
    (True, True, 3),
    (True, False, 3),
  ],
)
def test_remat_and_scan_give_the_same_meta_gradient(remat, scan, segment):
  model, teacher, student, batch, tx = _problem("batch", "momentum")
  hp, k3 = _hp(), dict(unroll_steps=3)
  _, ref = _feedback_grad("exact", hp, model, teacher, student, batch, tx, **k3)
  _, got = _feedback_grad(
    "exact",
    hp,
    model,
    teacher,
    student,
    batch,
    tx,
    **k3,
    remat=remat,
    scan=scan,
    segment=segment,
  )
  assert _max_diff(ref, got) < 1e-12


@pytest.mark.parametrize(
  "norm,opt,alpha,view",
  [
    ("batch", "sgd", 0.0, "weak"),
    ("batch", "nesterov", 0.1, "weak"),
    ("group", "momentum", 0.2, "strong"),
    ("batch", "adam", 0.1, "weak"),
  ],
)
def test_exact_jvp_equals_exact_at_one_step(norm, opt, alpha, view):
  model, teacher, student, batch, tx = _problem(norm, opt)
  hp = _hp(label_smoothing=alpha, label_view=view, pseudo_temperature=1.5)
  v_exact, g_exact = _feedback_grad(
    "exact", hp, model, teacher, student, batch, tx
  )
  v_jvp, g_jvp = _feedback_grad(
    "exact_jvp", hp, model, teacher, student, batch, tx
  )
  assert abs(float(v_exact - v_jvp)) < 1e-12  # both are L_l(θS')
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(g_exact))
  assert scale > 1e-6  # a real gradient
  assert _max_diff(g_exact, g_jvp) < 1e-10 * max(scale, 1.0)


def test_score_function_is_unbiased_by_enumeration():
  """E_y[estimate(y)] = grad of E_y[L_l(θS'(y))], y ~ Cat(teacher)."""
  model, teacher, student, batch, tx = _problem("batch", "sgd", unlabeled=3)
  hp = _hp(label_smoothing=0.1, pseudo_temperature=0.7)
  apply = model.apply

  def log_probs(t_params):
    z, _ = mpl.teacher_logits(t_params, teacher[1], batch, apply_fn=apply)
    return jax.nn.log_softmax(z[hp.label_view] / hp.pseudo_temperature)

  draws = [jnp.array(y) for y in itertools.product(range(3), repeat=3)]
  kw = dict(apply_fn=apply, tx=tx, hp=hp, unroll_as=mpl.ONE_STEP)
  objective = [
    mpl.objective_for_targets(jax.nn.one_hot(y, 3), student, batch, **kw)[0]
    for y in draws
  ]

  def expected_objective(t_params):
    lp = log_probs(t_params)
    return sum(
      jnp.exp(jnp.sum(lp[jnp.arange(3), y])) * jax.lax.stop_gradient(o)
      for y, o in zip(draws, objective)
    )

  exact = jax.grad(expected_objective)(teacher[0])
  lp = log_probs(teacher[0])
  mean = None
  for y in draws:
    p = jnp.exp(jnp.sum(lp[jnp.arange(3), y]))
    _, g = _feedback_grad(
      "score_function", hp, model, teacher, student, batch, tx, labels=y
    )
    g = jax.tree.map(lambda a, p=p: p * a, g)
    mean = g if mean is None else jax.tree.map(jnp.add, mean, g)
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(exact))
  assert scale > 1e-6
  assert _max_diff(exact, mean) < 1e-12 * max(scale, 1.0)


@pytest.mark.parametrize("mode", ["exact", "exact_jvp"])
def test_a_teacher_step_along_the_feedback_lowers_the_students_loss(mode):
  model, teacher, student, batch, tx = _problem("batch", "momentum")
  hp = _hp()
  f = _objective(hp, model, teacher, student, batch, tx)
  _, g = _feedback_grad(mode, hp, model, teacher, student, batch, tx)
  step = lambda s: jax.tree.map(lambda p, d: p - s * d, teacher[0], g)
  before = float(f(teacher[0]))
  assert float(f(step(1e-2))) < before < float(f(step(-1e-2)))


def test_first_order_sign_switch_negates_the_feedback():
  model, teacher, student, batch, tx = _problem("batch", "sgd")
  hp = _hp()
  _, a = _feedback_grad("first_order", hp, model, teacher, student, batch, tx)
  _, b = _feedback_grad(
    "first_order", hp, model, teacher, student, batch, tx, sign="new_minus_old"
  )
  assert _max_diff(a, jax.tree.map(jnp.negative, b)) < 1e-14
  assert _max_diff(a, jax.tree.map(jnp.zeros_like, a)) > 1e-8
  _, c = _feedback_grad(
    "first_order", hp, model, teacher, student, batch, tx, reduce="sum"
  )
  assert _max_diff(c, jax.tree.map(lambda x: 6 * x, a)) < 1e-12  # n = 6


def test_first_order_is_the_reference_formula():
  """d * mean_i CE(z_strong_i, argmax z_strong_i), d = L_old - L_new, with
  the student trained on the weak view's argmax: recomputed by hand."""
  model, teacher, student, batch, tx = _problem("batch", "sgd")
  hp = _hp()
  apply = model.apply
  z, _ = mpl.teacher_logits(teacher[0], teacher[1], batch, apply_fn=apply)
  hard_weak = jnp.argmax(z["weak"], -1)
  l_new, (_, (_, s_l)) = mpl.objective_for_targets(
    jax.nn.one_hot(hard_weak, 3),
    student,
    batch,
    apply_fn=apply,
    tx=tx,
    hp=hp,
    unroll_as=mpl.ONE_STEP,
  )
  l_old = jnp.mean(
    -jnp.take_along_axis(
      jax.nn.log_softmax(s_l[0]), batch["label"][:, None], -1
    )
  )
  hard_strong = jnp.argmax(z["strong"], -1)
  ce = -jnp.take_along_axis(
    jax.nn.log_softmax(z["strong"]), hard_strong[:, None], -1
  )
  want = (l_old - l_new) * jnp.mean(ce)
  got, (_, m) = feedback.first_order(
    z, student, batch, jax.random.key(0), apply_fn=apply, tx=tx, hp=hp, **FO
  )
  assert abs(float(got - want)) < 1e-14 and abs(float(m["d"])) > 1e-6


def test_inconsistent_statics_are_clear_errors():
  with pytest.raises(ValueError, match=r"exact\.unroll_steps=0 must be >= 1"):
    feedback.bind("exact", _hp(), {"exact": {**EXACT, "unroll_steps": 0}})
  # only exact unrolls: the others have no unroll_steps to set
  assert feedback.student_steps("exact", {"exact": {"unroll_steps": 3}}) == 3
  assert (
    feedback.student_steps("exact_jvp", {"exact": {"unroll_steps": 3}}) == 1
  )
  with pytest.raises(ValueError, match="feedback must be one of"):
    feedback.bind("exakt", _hp(), {"first_order": FO})
  with pytest.raises(ValueError, match="first_order.sign must be one of"):
    feedback.bind("first_order", _hp(), {"first_order": {**FO, "sign": "plus"}})
  model, _, student, batch, tx = _problem()
  with pytest.raises(ValueError, match="do not split into 4"):
    mpl.student_updates(
      student,
      batch,
      jnp.ones((6, 3)) / 3,
      apply_fn=model.apply,
      tx=tx,
      hp=_hp(),
      unroll_as=_steps(4),
    )
