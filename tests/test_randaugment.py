"""Tests for jaxfer.data.randaugment: the reference pools, each op against
Pillow or its definition, and rand_augment's draws."""

import functools

import numpy as np
from PIL import ImageEnhance
from PIL import ImageOps
import pytest

from conftest import arr
from conftest import face
from conftest import pil
from conftest import rng
from jaxfer.data import randaugment as T


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
@pytest.mark.parametrize("c", [1, 3])
def test_every_op_keeps_shape_and_dtype(pool, c):
  img = face(c=c)
  for op in T.POOL_OPS[pool]:
    for m in (0, 1, 5, 16, 30):
      out = T.apply_op(img, op, rng(), m=m, pool=pool)
      assert out.shape == img.shape and out.dtype == np.uint8, (op, m)
  np.testing.assert_array_equal(img, face(c=c))  # input untouched


def test_pools_are_the_reference_ones():
  assert set(T.POOL_OPS["face2exp"]) == {
    "AutoContrast",
    "Brightness",
    "Color",
    "Equalize",
    "Invert",
    "Posterize",
    "Sharpness",
    "Solarize",
    "Cover",
  }
  assert len(T.POOL_OPS["mpl"]) == 15
  assert {
    "Rotate",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Contrast",
    "Cutout",
  } <= set(T.POOL_OPS["mpl"])
  with pytest.raises(ValueError):
    T.rand_augment(face(), rng(), n=1, m=5, pool="nope")


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
@pytest.mark.parametrize("c", [1, 3])
def test_point_ops_match_imageops(pool, c):
  img = face(c=c, seed=3)
  op = functools.partial(T.apply_op, img, rng=rng(), pool=pool)
  np.testing.assert_array_equal(op("Invert", m=16), 255 - img)
  np.testing.assert_array_equal(
    op("AutoContrast", m=16), arr(ImageOps.autocontrast(pil(img)))
  )
  np.testing.assert_array_equal(
    op("Equalize", m=16), arr(ImageOps.equalize(pil(img)))
  )
  # Solarize at m = 5: 256 - 128 (face2exp), 255 - 128 (mpl).
  threshold = 128 if pool == "face2exp" else 127
  np.testing.assert_array_equal(
    op("Solarize", m=5), arr(ImageOps.solarize(pil(img), threshold))
  )
  # The reference's m = 16 drives the threshold below 0: Solarize = Invert.
  np.testing.assert_array_equal(op("Solarize", m=16), 255 - img)
  np.testing.assert_array_equal(op("Solarize", m=0), img)
  bits = 6 if pool == "face2exp" else 2  # int(6.4); 8 - round(6.4)
  np.testing.assert_array_equal(
    op("Posterize", m=16), arr(ImageOps.posterize(pil(img), bits))
  )


def test_posterize_zero_bits_is_black_in_face2exp():
  out = T.apply_op(face(), "Posterize", rng(), m=2, pool="face2exp")
  assert not out.any()


@pytest.mark.parametrize("seed", range(5))
def test_autocontrast_equalize_on_random_ranges(seed):
  r = rng(seed)
  for _ in range(20):
    lo = int(r.integers(0, 256))
    hi = int(r.integers(lo, 256))
    img = r.integers(
      lo, hi + 1, (int(r.integers(1, 30)),) * 2 + (3,), dtype=np.uint8
    )
    for name, ref in (
      ("AutoContrast", ImageOps.autocontrast),
      ("Equalize", ImageOps.equalize),
    ):
      np.testing.assert_array_equal(
        T.apply_op(img, name, r, m=1), arr(ref(pil(img)))
      )


def test_enhancers_match_pillow():
  img = face(c=3)
  for name in ("Brightness", "Color", "Sharpness"):
    want = getattr(ImageEnhance, name)(pil(img)).enhance(3 * 1.8 / 10 + 0.1)
    out = T.apply_op(img, name, rng(), m=3)
    np.testing.assert_array_equal(out, arr(want))
    assert not np.array_equal(out, img)
  grey = face()
  np.testing.assert_array_equal(T.apply_op(grey, "Color", rng(), m=16), grey)


@pytest.mark.parametrize("size,rows", [(48, 11), (224, 51), (32, 7)])
@pytest.mark.parametrize("c", [1, 3])
def test_cover_blacks_exactly_the_top_rows(size, rows, c):
  img = face(size, size, c)
  assert img.min() > 0
  out = T.apply_op(img, "Cover", rng(), m=16)
  assert not out[:rows].any()
  np.testing.assert_array_equal(out[rows:], img[rows:])


def test_geometric_ops_move_pixels():
  img = face(c=3)
  for op in ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"):
    for s in range(4):
      out = T.apply_op(img, op, rng(s), m=10, pool="mpl")
      assert out.shape == img.shape and not np.array_equal(out, img), op
  # Rotating by +-30 degrees leaves grey 128 in every corner.
  out = T.apply_op(img, "Rotate", rng(), m=10, pool="mpl")
  assert (out[0, 0] == 128).all() and (out[-1, -1] == 128).all()


def test_final_cutout_is_grey_box_of_the_scaled_size():
  img = face(c=1)
  img[img == 128] = 127
  # n = 0: only MPL's final cutout, int(16 * 8 * 48 / 32 / 10) = 19 px,
  # drawn as Pillow's inclusive rectangle, clipped at the border.
  for s in range(20):
    out = T.rand_augment(img, rng(s), n=0, m=16, pool="mpl")
    ys, xs = np.nonzero(out[..., 0] == 128)
    assert ys.size and ys.max() - ys.min() <= 19 and xs.max() - xs.min() <= 19
    assert ys.size == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
  full = T.rand_augment(img, rng(1), n=0, m=16, pool="mpl")
  assert (full == 128).sum() <= 20 * 20


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
@pytest.mark.parametrize("c", [1, 3])
def test_rand_augment_changes_image_and_is_deterministic(pool, c):
  img = face(c=c)
  names = T.POOL_OPS[pool]
  changed = 0
  for s in range(30):
    out = T.rand_augment(img, rng(s), n=2, m=16, pool=pool)
    assert out.shape == img.shape and out.dtype == np.uint8
    changed += not np.array_equal(out, img)
    # The first draws of rand_augment are the op indices. In face2exp every
    # op is applied and changes this image, except Color on grey; and at
    # m = 16 Solarize inverts every pixel, so two inversions cancel.
    drawn = [names[k] for k in rng(s).integers(len(names), size=2)]
    drawn = [d for d in drawn if not (d == "Color" and c == 1)]
    inversions = sum(d in ("Invert", "Solarize") for d in drawn)
    if pool == "mpl" or inversions != len(drawn) or inversions == 1:
      assert not np.array_equal(out, img), (s, drawn)
    np.testing.assert_array_equal(
      out, T.rand_augment(img, rng(s), n=2, m=16, pool=pool)
    )
  assert changed >= 25
  outs = {
    T.rand_augment(img, rng(s), n=2, m=16, pool=pool).tobytes()
    for s in range(15)
  }
  assert len(outs) > 5
