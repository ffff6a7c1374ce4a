"""Mixup and CutMix in the supervised step: images mixed with a
permutation of the batch in the proportion the targets say, CutMix's
proportion the exact share of pixels kept, both off by default, and a
saved config from before the field existed still loads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import config
from jaxfer.core import defaults
from jaxfer.methods import supervised

N, H, W = 8, 12, 10


def _batch():
  # image i is the constant i; its label is i (one class per image)
  images = jnp.broadcast_to(
    jnp.arange(N, dtype=jnp.float32)[:, None, None, None], (N, H, W, 1)
  )
  return images, jax.nn.one_hot(jnp.arange(N), N)


@pytest.mark.parametrize("seed", range(4))
def test_mixup_mixes_images_and_targets_in_one_proportion(seed):
  images, targets = _batch()
  out, t, lam = supervised.mix(
    jax.random.key(seed), images, targets, mixup_alpha=0.4, cutmix_alpha=0
  )
  lam = float(lam)
  assert 0 < lam < 1
  for i in range(N):
    # the target holds lam on the image's own class, 1 - lam on its partner
    j = [k for k in range(N) if k != i and t[i, k] > 1e-6] or [i]
    np.testing.assert_allclose(t[i].sum(), 1, atol=1e-6)
    if j[0] != i:
      np.testing.assert_allclose(t[i, i], lam, atol=1e-6)
    np.testing.assert_allclose(out[i], lam * i + (1 - lam) * j[0], atol=1e-5)
  # the partners are a permutation of the batch
  partners = [
    int(np.argmax(np.where(np.arange(N) == i, -1, t[i])))
    if t[i, i] < 1 - 1e-6
    else i
    for i in range(N)
  ]
  assert sorted(partners) == list(range(N))


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_pastes_a_box_and_lam_is_the_share_kept(seed):
  images, targets = _batch()
  out, t, lam = supervised.mix(
    jax.random.key(seed), images, targets, mixup_alpha=0, cutmix_alpha=1.0
  )
  out = np.asarray(out)[..., 0]
  for i in range(N):
    kept = out[i] == i
    pasted = ~kept
    if pasted.any():  # a rectangle of one partner's pixels
      ys, xs = np.nonzero(pasted)
      box = pasted[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
      assert box.all() and len(np.unique(out[i][pasted])) == 1
      j = int(out[i][pasted][0])
      np.testing.assert_allclose(t[i, j], 1 - float(lam), atol=1e-6)
      np.testing.assert_allclose(kept.mean(), float(lam), atol=1e-6)
    else:  # its own partner (or an empty box): still itself, all of it
      np.testing.assert_allclose(t[i, i], 1, atol=1e-6)
    np.testing.assert_allclose(t[i].sum(), 1, atol=1e-6)


def test_lam_follows_beta_and_off_means_untouched():
  images, targets = _batch()
  lams = [
    float(
      supervised.mix(
        jax.random.key(k), images, targets, mixup_alpha=2.0, cutmix_alpha=0
      )[2]
    )
    for k in range(300)
  ]
  # Beta(2, 2): mean 1/2, variance 1/20
  assert abs(np.mean(lams) - 0.5) < 0.04 and abs(np.var(lams) - 0.05) < 0.015
  out, t, lam = supervised.mix(
    jax.random.key(0), images, targets, mixup_alpha=0, cutmix_alpha=0
  )
  assert out is images and t is targets and float(lam) == 1.0


def test_the_step_trains_with_mixup_and_old_configs_load():
  c = config("default", "smoke")
  c.mixup.alpha, c.mixup.cutmix_alpha = 0.2, 1.0
  from jaxfer import methods  # pylint: disable=g-import-not-at-top
  from jaxfer import models  # pylint: disable=g-import-not-at-top

  model = models.build(c.model, c.data.num_classes)
  method = methods.build(c, model, 10)
  x = jax.random.normal(jax.random.key(1), (8, 48, 48, 1))
  state = method.init(jax.random.key(0), x[:1])
  batch = {"image": x, "label": jnp.arange(8) % 7}
  state, metrics = jax.jit(method.step)(state, batch, jax.random.key(2))
  assert np.isfinite(float(metrics["loss"]))
  saved = c.to_dict()
  del saved["mixup"]  # a config saved before the field existed
  back = defaults.from_json(saved)
  assert back.mixup.alpha == 0.0 and back.model == c.model
