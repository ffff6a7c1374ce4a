"""Dataset distillation: the meta-gradients are right (float64, tiny), KRR
is the ridge solve it claims, and a distilled set round-trips to disk."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from jaxfer import augment
from jaxfer import testing
from jaxfer import unroll
from jaxfer.data import distilled
from jaxfer.data import sources
from jaxfer.methods import distill


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
  learned = {"images": f(6, 4, 4, 1),
             "raw_lrs": jnp.log(jnp.expm1(0.3 + 0.1 * jnp.arange(4.0))),
             "label_logits": 2.0 * jax.nn.one_hot(labels, 3) + f(6, 3)}
  tx = optax.sgd(1.0, momentum=momentum or None)
  params, stats = testing.init_variables(model, jax.random.key(3))
  init = unroll.Inner(params, stats, tx.init(params))
  real = {"image": f(5, 4, 4, 1), "label": jnp.array([0, 1, 2, 0, 1])}
  hp = distill.Hyper(num_classes=3, steps_per_epoch=2, epochs=2,
                     learn_labels=learn_labels, **hp)
  return model, learned, labels, init, real, tx, hp


@pytest.mark.parametrize("remat,scan,momentum,norm", [
    (False, False, 0.0, "instance"), (True, False, 0.9, "instance"),
    (True, True, 0.0, "batch")])
def test_unroll_gradient_matches_finite_differences(x64, remat, scan,
                                                    momentum, norm):
  model, learned, labels, init, real, tx, hp = _problem(
      norm, momentum, remat=remat, scan=scan)
  aug = augment.sample(jax.random.key(2), max_shift=1)
  f = lambda l: distill.unroll_loss(l, labels, init, real, aug,
                                    apply_fn=model.apply, tx=tx, hp=hp)
  check_grads(f, (learned,), order=1, modes=["rev"], eps=1e-5, atol=1e-7,
              rtol=1e-6)
  g = jax.grad(f)(learned)
  for k in ("images", "raw_lrs", "label_logits"):
    assert float(jnp.max(jnp.abs(g[k]))) > 1e-6, k    # all three are learned


def test_remat_segments_and_scan_agree_with_the_plain_unroll(x64):
  model, learned, labels, init, real, tx, hp = _problem(momentum=0.9)
  grad = lambda hp: jax.grad(lambda l: distill.unroll_loss(
      l, labels, init, real, None, apply_fn=model.apply, tx=tx,
      hp=hp))(learned)
  ref = grad(dataclasses.replace(hp, remat=False))
  for kw in (dict(remat=True), dict(remat=True, segment=2),
             dict(remat=True, scan=True, segment=2), dict(scan=True)):
    got = grad(dataclasses.replace(hp, **kw))
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=kw)


def test_groups_take_every_class_in_each_inner_step():
  hp = distill.Hyper(num_classes=3, steps_per_epoch=2)
  ids = jnp.arange(6)          # class-major: class c holds 2c, 2c + 1
  np.testing.assert_array_equal(distill._groups(ids, hp),  # pylint: disable=protected-access
                                [[0, 2, 4], [1, 3, 5]])


def test_krr_prediction_is_the_explicit_ridge_solve(x64):
  rng = np.random.default_rng(1)
  fs, fq, ys = rng.normal(size=(6, 5)), rng.normal(size=(4, 5)), rng.normal(
      size=(6, 3))
  reg = 0.1
  k = fs @ fs.T
  want = fq @ fs.T @ np.linalg.solve(k + reg * np.trace(k) / 6 * np.eye(6),
                                     ys)
  got = distill.krr_predict(jnp.asarray(fs), jnp.asarray(fq),
                            jnp.asarray(ys), reg)
  np.testing.assert_allclose(got, want, rtol=1e-10)


def test_krr_gradient_matches_finite_differences(x64):
  model, learned, labels, init, real, _, hp = _problem(objective="krr",
                                                       krr_reg=1e-2)
  aug = augment.sample(jax.random.key(4), max_shift=1)
  f = lambda l: distill.krr_loss(l, labels, init, real, aug,
                                 apply_fn=model.apply, hp=hp)
  check_grads(f, (learned,), order=1, modes=["rev"], eps=1e-5, atol=1e-7,
              rtol=1e-6)
  assert float(jnp.max(jnp.abs(jax.grad(f)(learned)["images"]))) > 1e-6


def test_augmentation_is_the_same_on_both_batches_and_differentiable(x64):
  p = augment.Params(flip=jnp.array(True), shift=jnp.array([1, -1]),
                     brightness=jnp.array(0.1), contrast=jnp.array(1.2))
  x = jnp.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4, 1)
  flipped = np.asarray(x)[:, :, ::-1]
  moved = np.zeros_like(flipped)              # 1 row down, 1 column left
  moved[:, 1:, :-1] = flipped[:, :-1, 1:]
  mean = moved.mean(axis=(1, 2, 3), keepdims=True)
  np.testing.assert_allclose(augment.apply(p, x),
                             (moved - mean) * 1.2 + mean + 0.1, rtol=1e-12)
  # One draw acts image by image: synthetic and real batches get the same.
  both = augment.apply(p, jnp.concatenate([x, 2 * x]))
  np.testing.assert_allclose(both[2:], augment.apply(p, 2 * x), rtol=1e-12)
  check_grads(lambda x: jnp.sum(augment.apply(p, x) ** 2), (x,), order=1,
              modes=["rev"])


def test_pool_member_restarts_at_its_age_limit():
  model, learned, labels, _, _, tx, hp = _problem()
  hp = dataclasses.replace(hp, pool_max_age=2)
  pool = distill.init_pool(jax.random.key(0), 2, model,
                           learned["images"][:1], tx, 2)
  assert pool.age.tolist() == [0, 1]
  target = distill.targets(learned, labels, hp)
  upd = lambda p, i: distill.update_pool(
      p, i, learned["images"], target, jax.random.key(9), None, model=model,
      tx=tx, lr=0.1, hp=hp)
  once = upd(pool, 0)
  assert once.age.tolist() == [1, 1]
  moved = jax.tree.leaves(once.params)[0][0] - jax.tree.leaves(
      pool.params)[0][0]
  assert float(jnp.max(jnp.abs(moved))) > 0
  reset = upd(pool, 1)                    # member 1 reaches age 2: restarts
  assert reset.age.tolist() == [0, 0]
  fresh = distill.fresh(jax.random.key(9), model, learned["images"][:1], tx)
  for a, b in zip(jax.tree.leaves(fresh.params),
                  jax.tree.leaves(reset.params)):
    np.testing.assert_array_equal(a, b[1])


def test_saved_set_loads_back_with_identical_arrays(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(14, 8, 8, 1)).astype(np.float32)
  labels = np.repeat(np.arange(7), 2).astype(np.int32)
  soft = rng.dirichlet(np.ones(7), 14).astype(np.float32)
  names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
  distilled.save(tmp_path / "d", images=images, labels=labels,
                 soft_labels=soft, class_names=names, mean=(0.5,),
                 std=(0.25,), lrs=np.array([0.1, 0.2]), learned_labels=True,
                 objective="unroll")
  arrays, meta = distilled.load_arrays(tmp_path / "d")
  np.testing.assert_array_equal(arrays["images"], images)
  np.testing.assert_array_equal(arrays["labels"], labels)
  np.testing.assert_array_equal(arrays["soft_labels"], soft)
  assert meta["images_per_class"] == 2 and meta["class_names"] == list(names)
  src = distilled.load(tmp_path / "d")
  pixels = np.clip(np.rint((images * 0.25 + 0.5) * 255), 0, 255)
  np.testing.assert_array_equal(src.images, pixels.astype(np.uint8))
  np.testing.assert_array_equal(src.labels, labels)
  np.testing.assert_array_equal(src[3]["soft_label"], soft[3])
  assert len(list(tmp_path.glob("d/distilled_*.png"))) == 7


def test_mixed_source_hits_the_ratio_and_keeps_every_row(tmp_path):
  names = testing.tiny_source().class_names
  base = testing.tiny_source(70)
  extra = sources.ArraySource(
      np.full((7, 8, 8, 1), 255, np.uint8), np.arange(7, dtype=np.int32),
      names, name="d", soft_labels=np.full((7, 7), 1 / 7, np.float32))
  mixed = distilled.Mixed(base, extra, 0.2)
  assert len(mixed) == 70 + round(0.25 * 70)
  extra_rows = [i for i in range(len(mixed)) if mixed[i]["image"].min() == 255]
  assert len(extra_rows) / len(mixed) == pytest.approx(0.2, abs=0.01)
  assert all("soft_label" in mixed[i] for i in (0, len(mixed) - 1))
  np.testing.assert_array_equal(mixed[0]["soft_label"],
                                np.eye(7, dtype=np.float32)[base[0]["label"]])
  with pytest.raises(ValueError, match="ratio must be in"):
    distilled.Mixed(base, extra, 1.0)
