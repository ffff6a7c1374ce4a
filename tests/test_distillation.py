"""Dataset distillation (`jaxfer.meta.distillation`): the meta-gradients
are right (float64, tiny) and KRR is the ridge solve it claims."""

import dataclasses

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import optax
import pytest

from jaxfer.core import defaults
from jaxfer.loop import testing
from jaxfer.meta import augment
from jaxfer.meta import distillation
from jaxfer.meta import unroll
from jaxfer.methods import distill


def _hyper(**fields):
  """The statics of the default `config.distill` (3 classes, 2 synthetic
  images each) with `fields` changed, built as a run builds them."""
  c = defaults.base()
  c.data.num_classes = 3
  c.distill.images_per_class = 2
  c.distill.update(fields)
  return distill.hyper(c)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


def _problem(norm="instance", momentum=0.0, learn_labels=True, **hp):
  """(model, learned, labels, init, real batch, tx, hp): 3 classes, 2
  synthetic 4x4 images per class in 2 groups, 2 epochs (T = 4)."""
  model = testing.tiny_model(norm)
  rng = np.random.default_rng(0)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.result_type(float))
  labels = jnp.repeat(jnp.arange(3), 2)
  learned = {
    "images": f(6, 4, 4, 1),
    "raw_lrs": jnp.log(jnp.expm1(0.3 + 0.1 * jnp.arange(4.0))),
    "label_logits": 2.0 * jax.nn.one_hot(labels, 3) + f(6, 3),
  }
  tx = optax.sgd(1.0, momentum=momentum or None)
  params, stats = testing.init_variables(model, jax.random.key(3))
  init = unroll.Inner(params, stats, tx.init(params))
  real = {"image": f(5, 4, 4, 1), "label": jnp.array([0, 1, 2, 0, 1])}
  hp = _hyper(steps_per_epoch=2, epochs=2, learn_labels=learn_labels, **hp)
  return model, learned, labels, init, real, tx, hp


@pytest.mark.parametrize(
  "remat,scan,momentum,norm",
  [
    (False, False, 0.0, "instance"),
    (True, False, 0.9, "instance"),
    (True, True, 0.0, "batch"),
  ],
)
def test_unroll_gradient_matches_finite_differences(
  x64, remat, scan, momentum, norm
):
  model, learned, labels, init, real, tx, hp = _problem(
    norm, momentum, remat=remat, scan=scan
  )
  aug = augment.sample(jax.random.key(2), max_shift=1)
  f = lambda lrn: distillation.unroll_loss(
    lrn, labels, init, real, aug, apply_fn=model.apply, tx=tx, hp=hp
  )
  check_grads(
    f, (learned,), order=1, modes=["rev"], eps=1e-5, atol=1e-7, rtol=1e-6
  )
  g = jax.grad(f)(learned)
  for k in ("images", "raw_lrs", "label_logits"):
    assert float(jnp.max(jnp.abs(g[k]))) > 1e-6, k  # all three are learned


@pytest.mark.slow
def test_remat_segments_and_scan_agree_with_the_plain_unroll(x64):
  model, learned, labels, init, real, tx, hp = _problem(momentum=0.9)
  grad = lambda hp: jax.grad(
    lambda lrn: distillation.unroll_loss(
      lrn, labels, init, real, None, apply_fn=model.apply, tx=tx, hp=hp
    )
  )(learned)
  ref = grad(dataclasses.replace(hp, remat=False))
  for kw in (
    dict(remat=True),
    dict(remat=True, segment=2),
    dict(remat=True, scan=True, segment=2),
    dict(scan=True),
  ):
    got = grad(dataclasses.replace(hp, **kw))
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=kw)


def test_groups_take_every_class_in_each_inner_step():
  hp = _hyper(steps_per_epoch=2)
  ids = jnp.arange(6)  # class-major: class c holds 2c, 2c + 1
  np.testing.assert_array_equal(
    distillation._groups(ids, hp),  # pylint: disable=protected-access
    [[0, 2, 4], [1, 3, 5]],
  )


def test_krr_prediction_is_the_explicit_ridge_solve(x64):
  rng = np.random.default_rng(1)
  fs, fq, ys = (
    rng.normal(size=(6, 5)),
    rng.normal(size=(4, 5)),
    rng.normal(size=(6, 3)),
  )
  reg = 0.1
  k = fs @ fs.T
  want = fq @ fs.T @ np.linalg.solve(k + reg * np.trace(k) / 6 * np.eye(6), ys)
  got = distillation.krr_predict(
    jnp.asarray(fs), jnp.asarray(fq), jnp.asarray(ys), reg
  )
  np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.slow
def test_krr_gradient_matches_finite_differences(x64):
  model, learned, labels, init, real, _, hp = _problem(
    objective="krr", krr_reg=1e-2
  )
  aug = augment.sample(jax.random.key(4), max_shift=1)
  f = lambda lrn: distillation.krr_loss(
    lrn, labels, init, real, aug, apply_fn=model.apply, hp=hp
  )
  check_grads(
    f, (learned,), order=1, modes=["rev"], eps=1e-5, atol=1e-7, rtol=1e-6
  )
  assert float(jnp.max(jnp.abs(jax.grad(f)(learned)["images"]))) > 1e-6


def test_augmentation_is_the_same_on_both_batches_and_differentiable(x64):
  p = augment.Params(
    flip=jnp.array(True),
    shift=jnp.array([1, -1]),
    brightness=jnp.array(0.1),
    contrast=jnp.array(1.2),
  )
  x = jnp.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4, 1)
  flipped = np.asarray(x)[:, :, ::-1]
  moved = np.zeros_like(flipped)  # 1 row down, 1 column left
  moved[:, 1:, :-1] = flipped[:, :-1, 1:]
  mean = moved.mean(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(
    augment.apply(p, x), (moved - mean) * 1.2 + mean + 0.1, rtol=1e-12
  )
  # One draw acts image by image: synthetic and real batches get the same.
  both = augment.apply(p, jnp.concatenate([x, 2 * x]))
  np.testing.assert_allclose(both[2:], augment.apply(p, 2 * x), rtol=1e-12)
  check_grads(
    lambda x: jnp.sum(augment.apply(p, x) ** 2), (x,), order=1, modes=["rev"]
  )


@pytest.mark.slow
def test_pool_member_restarts_at_its_age_limit():
  model, learned, labels, _, _, tx, hp = _problem()
  hp = dataclasses.replace(hp, pool_max_age=2)
  pool = distillation.init_pool(
    jax.random.key(0), 2, model, learned["images"][:1], tx, 2
  )
  assert pool.age.tolist() == [0, 1]
  target = distillation.targets(learned, labels, hp)
  upd = lambda p, i: distillation.update_pool(
    p,
    i,
    learned["images"],
    target,
    jax.random.key(9),
    None,
    model=model,
    tx=tx,
    lr=0.1,
    hp=hp,
  )
  once = upd(pool, 0)
  assert once.age.tolist() == [1, 1]
  moved = (
    jax.tree.leaves(once.params)[0][0] - jax.tree.leaves(pool.params)[0][0]
  )
  assert float(jnp.max(jnp.abs(moved))) > 0
  reset = upd(pool, 1)  # member 1 reaches age 2: restarts
  assert reset.age.tolist() == [0, 0]
  fresh = distillation.fresh(
    jax.random.key(9), model, learned["images"][:1], tx
  )
  for a, b in zip(jax.tree.leaves(fresh.params), jax.tree.leaves(reset.params)):
    np.testing.assert_array_equal(a, b[1])
