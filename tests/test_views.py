"""Tests for jaxfer.data.views: the composite training and evaluation views."""

import functools

import numpy as np
import pytest

from conftest import MEAN3
from conftest import STATS
from conftest import STD3
from conftest import face
from conftest import rng
from jaxfer.data import views as T


@pytest.mark.parametrize("size", [48, 224])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
def test_composite_shapes_and_dtypes(size, c, pool):
  mean, std = STATS[c]
  soft = np.full(7, 1 / 7, np.float32)
  item = {
    "image": face(60, 52, 4 - c),
    "label": np.int32(3),
    "soft_label": soft,
  }
  kw = dict(size=size, channels=c, mean=mean, std=std)
  ev = T.eval_view(item, **kw)
  assert ev["image"].shape == (size, size, c)
  assert ev["image"].dtype == np.float32
  assert ev["label"] == 3 and ev["soft_label"] is soft
  strong = dict(n=2, m=16, pool=pool)
  for s in (None, strong):
    tr = T.labeled_train(
      item, rng(), **kw, crop_padding=size // 8, flip=True, strong=s
    )
    assert tr["image"].shape == (size, size, c)
    assert tr["image"].dtype == np.float32
    assert tr["label"] == 3 and tr["soft_label"] is soft
  pair = T.unlabeled_pair(
    {"image": item["image"]},
    rng(),
    **kw,
    crop_padding=size // 8,
    flip=True,
    **strong,
  )
  assert set(pair) == {"weak", "strong"}
  for v in pair.values():
    assert v.shape == (size, size, c) and v.dtype == np.float32
  assert "image" in item  # the input item is not modified


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
def test_views_deterministic_and_grey_stays_grey(pool):
  img = face()
  kw = dict(
    size=48, channels=1, crop_padding=6, flip=True, n=2, m=16, pool=pool
  )
  a = T.strong_view(img, rng(7), **kw)
  assert a.shape == (48, 48, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, T.strong_view(img, rng(7), **kw))
  assert not np.array_equal(a, T.strong_view(img, rng(8), **kw))
  w = T.weak_view(img, rng(7), size=48, channels=1, crop_padding=6, flip=True)
  assert w.shape == (48, 48, 1) and w.flags.c_contiguous
  assert not np.array_equal(
    w, T.weak_view(img, rng(9), size=48, channels=1, crop_padding=6, flip=True)
  )


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
def test_unlabeled_pair_views_differ(pool):
  item = {"image": face(c=3)}
  mean, std = STATS[3]
  kw = dict(
    size=48,
    channels=3,
    mean=mean,
    std=std,
    crop_padding=6,
    flip=True,
    n=2,
    m=16,
    pool=pool,
  )
  same = 0
  for s in range(20):
    p = T.unlabeled_pair(item, rng(s), **kw)
    same += np.array_equal(p["weak"], p["strong"])
    q = T.unlabeled_pair(item, rng(s), **kw)
    np.testing.assert_array_equal(p["strong"], q["strong"])
  assert same == 0


def test_labeled_train_without_padding_or_flip_is_eval_view():
  item = {"image": face(c=3), "label": np.int32(1)}
  kw = dict(size=48, channels=3, mean=MEAN3, std=STD3)
  tr = T.labeled_train(item, rng(), **kw, crop_padding=0, flip=False)
  np.testing.assert_array_equal(tr["image"], T.eval_view(item, **kw)["image"])


def test_partial_binding():
  fn = functools.partial(
    T.unlabeled_pair,
    size=48,
    channels=1,
    mean=(0.5,),
    std=(0.5,),
    crop_padding=6,
    flip=True,
    n=2,
    m=16,
    pool="face2exp",
  )
  out = fn({"image": face()}, rng())
  assert out["weak"].shape == (48, 48, 1)
