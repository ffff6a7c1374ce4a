"""Tests for jaxfer.data.transforms."""

import functools

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from jaxfer.data import transforms as T

MEAN3, STD3 = (0.5863, 0.4595, 0.4030), (0.2715, 0.2424, 0.2366)
STATS = {1: ((0.5,), (0.25,)), 3: (MEAN3, STD3)}


def face(h=48, w=48, c=1, seed=0):
  """A test image: a mid-range gradient plus noise, no value 0 or 128-only.

  Its range is inside [20, 220], so AutoContrast and Equalize change it, and
  it is asymmetric, so a flip changes it.
  """
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:h, :w]
  base = 20 + 150 * (x + 2 * y) / (w + 2 * h)
  img = base[..., None] + rng.integers(0, 50, (h, w, c))
  return img.astype(np.uint8)


def pil(img):
  return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def arr(im):
  a = np.asarray(im)
  return a[..., None] if a.ndim == 2 else a


def rng(seed=0):
  return np.random.default_rng(seed)


# Basic transforms ----------------------------------------------------------

def test_to_channels_matches_pillow():
  rgb = face(c=3, seed=1)
  grey = T.to_channels(rgb, 1)
  assert grey.shape == (48, 48, 1) and grey.dtype == np.uint8
  np.testing.assert_array_equal(grey[..., 0], np.asarray(pil(rgb).convert("L")))
  back = T.to_channels(grey, 3)
  assert back.shape == (48, 48, 3)
  np.testing.assert_array_equal(back, np.repeat(grey, 3, -1))
  assert T.to_channels(grey, 1) is grey


def test_resize_matches_pillow_and_noop():
  img = face(64, 80, 3)
  out = T.resize(img, 48)
  want = np.asarray(pil(img).resize((48, 48), Image.Resampling.BILINEAR))
  np.testing.assert_array_equal(out, want)
  assert T.resize(img, (32, 40)).shape == (32, 40, 3)
  g = face()
  assert T.resize(g, 48) is g


def test_center_crop():
  img = face(50, 60)
  out = T.center_crop(img, 48)
  np.testing.assert_array_equal(out, img[1:49, 6:54])
  with pytest.raises(ValueError):
    T.center_crop(img, 52)


def test_random_crop_identity_without_padding():
  img = face()
  np.testing.assert_array_equal(T.random_crop(img, 48, rng()), img)


@pytest.mark.parametrize("padding", [1, 4, 6, 47, 60])
def test_random_crop_reflect_equals_np_pad(padding):
  img = face(48, 40, 3)
  for seed in range(20):
    out = T.random_crop(img, (48, 40), rng(seed), padding=padding)
    r = rng(seed)
    p = np.pad(img, ((padding,) * 2, (padding,) * 2, (0, 0)), mode="reflect")
    top, left = r.integers(2 * padding + 1), r.integers(2 * padding + 1)
    np.testing.assert_array_equal(out, p[top:top + 48, left:left + 40])


def test_random_crop_constant_fill():
  img = np.full((8, 8, 1), 7, np.uint8)
  outs = [T.random_crop(img, 8, rng(s), padding=4, pad_mode="constant",
                        fill=128) for s in range(20)]
  assert all(set(np.unique(o)) <= {7, 128} for o in outs)
  assert any((o == 128).any() for o in outs)


def test_random_resized_crop():
  img = face(60, 50, 3)
  for s in range(10):
    out = T.random_resized_crop(img, 32, rng(s))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  sq = face()
  full = T.random_resized_crop(sq, 48, rng(), scale=(1, 1), ratio=(1, 1))
  np.testing.assert_array_equal(full, sq)


def test_random_flip_mirrors_about_half():
  img = face()
  flips = 0
  for s in range(400):
    out = T.random_flip(img, rng(s))
    if np.array_equal(out, np.flip(img, 1)):
      flips += 1
    else:
      np.testing.assert_array_equal(out, img)
  assert 150 < flips < 250


def test_normalize_denormalize_round_trip():
  for c in (1, 3):
    img = face(c=c)
    mean, std = STATS[c]
    x = T.normalize(img, mean, std)
    assert x.dtype == np.float32 and x.shape == img.shape
    want = (img / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(T.denormalize(x, mean, std), img)
  with pytest.raises(ValueError):
    T.normalize(face(), MEAN3, STD3)


# RandAugment ops ------------------------------------------------------------

@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
@pytest.mark.parametrize("c", [1, 3])
def test_every_op_keeps_shape_and_dtype(pool, c):
  img = face(c=c)
  for op in T.POOL_OPS[pool]:
    for m in (0, 1, 5, 16, 30):
      out = T.apply_op(img, op, rng(), m=m, pool=pool)
      assert out.shape == img.shape and out.dtype == np.uint8, (op, m)
  np.testing.assert_array_equal(img, face(c=c))   # input untouched


def test_pools_are_the_reference_ones():
  assert set(T.POOL_OPS["face2exp"]) == {
      "AutoContrast", "Brightness", "Color", "Equalize", "Invert",
      "Posterize", "Sharpness", "Solarize", "Cover"}
  assert len(T.POOL_OPS["mpl"]) == 15
  assert {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY",
          "Contrast", "Cutout"} <= set(T.POOL_OPS["mpl"])
  with pytest.raises(ValueError):
    T.rand_augment(face(), rng(), n=1, m=5, pool="nope")


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
@pytest.mark.parametrize("c", [1, 3])
def test_point_ops_match_imageops(pool, c):
  img = face(c=c, seed=3)
  op = functools.partial(T.apply_op, img, rng=rng(), pool=pool)
  np.testing.assert_array_equal(op("Invert", m=16), 255 - img)
  np.testing.assert_array_equal(op("AutoContrast", m=16),
                                arr(ImageOps.autocontrast(pil(img))))
  np.testing.assert_array_equal(op("Equalize", m=16),
                                arr(ImageOps.equalize(pil(img))))
  # Solarize at m = 5: 256 - 128 (face2exp), 255 - 128 (mpl).
  threshold = 128 if pool == "face2exp" else 127
  np.testing.assert_array_equal(op("Solarize", m=5),
                                arr(ImageOps.solarize(pil(img), threshold)))
  # The reference's m = 16 drives the threshold below 0: Solarize = Invert.
  np.testing.assert_array_equal(op("Solarize", m=16), 255 - img)
  np.testing.assert_array_equal(op("Solarize", m=0), img)
  bits = 6 if pool == "face2exp" else 2   # int(6.4); 8 - round(6.4)
  np.testing.assert_array_equal(op("Posterize", m=16),
                                arr(ImageOps.posterize(pil(img), bits)))


def test_posterize_zero_bits_is_black_in_face2exp():
  out = T.apply_op(face(), "Posterize", rng(), m=2, pool="face2exp")
  assert not out.any()


@pytest.mark.parametrize("seed", range(5))
def test_autocontrast_equalize_on_random_ranges(seed):
  r = rng(seed)
  for _ in range(20):
    lo = int(r.integers(0, 256))
    hi = int(r.integers(lo, 256))
    img = r.integers(lo, hi + 1, (int(r.integers(1, 30)),) * 2 + (3,),
                     dtype=np.uint8)
    for name, ref in (("AutoContrast", ImageOps.autocontrast),
                      ("Equalize", ImageOps.equalize)):
      np.testing.assert_array_equal(T.apply_op(img, name, r, m=1),
                                    arr(ref(pil(img))))


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


# rand_augment and composite views -------------------------------------------

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
        out, T.rand_augment(img, rng(s), n=2, m=16, pool=pool))
  assert changed >= 25
  outs = {T.rand_augment(img, rng(s), n=2, m=16, pool=pool).tobytes()
          for s in range(15)}
  assert len(outs) > 5


@pytest.mark.parametrize("size", [48, 224])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
def test_composite_shapes_and_dtypes(size, c, pool):
  mean, std = STATS[c]
  soft = np.full(7, 1 / 7, np.float32)
  item = {"image": face(60, 52, 4 - c),
          "label": np.int32(3), "soft_label": soft}
  kw = dict(size=size, channels=c, mean=mean, std=std)
  ev = T.eval_view(item, **kw)
  assert ev["image"].shape == (size, size, c)
  assert ev["image"].dtype == np.float32
  assert ev["label"] == 3 and ev["soft_label"] is soft
  strong = dict(n=2, m=16, pool=pool)
  for s in (None, strong):
    tr = T.labeled_train(item, rng(), **kw, crop_padding=size // 8,
                         flip=True, strong=s)
    assert tr["image"].shape == (size, size, c)
    assert tr["image"].dtype == np.float32
    assert tr["label"] == 3 and tr["soft_label"] is soft
  pair = T.unlabeled_pair({"image": item["image"]}, rng(), **kw,
                          crop_padding=size // 8, flip=True, **strong)
  assert set(pair) == {"weak", "strong"}
  for v in pair.values():
    assert v.shape == (size, size, c) and v.dtype == np.float32
  assert "image" in item   # the input item is not modified


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
def test_views_deterministic_and_grey_stays_grey(pool):
  img = face()
  kw = dict(size=48, channels=1, crop_padding=6, flip=True, n=2, m=16,
            pool=pool)
  a = T.strong_view(img, rng(7), **kw)
  assert a.shape == (48, 48, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, T.strong_view(img, rng(7), **kw))
  assert not np.array_equal(a, T.strong_view(img, rng(8), **kw))
  w = T.weak_view(img, rng(7), size=48, channels=1, crop_padding=6,
                  flip=True)
  assert w.shape == (48, 48, 1) and w.flags.c_contiguous
  assert not np.array_equal(w, T.weak_view(img, rng(9), size=48, channels=1,
                                           crop_padding=6, flip=True))


@pytest.mark.parametrize("pool", ["face2exp", "mpl"])
def test_unlabeled_pair_views_differ(pool):
  item = {"image": face(c=3)}
  mean, std = STATS[3]
  kw = dict(size=48, channels=3, mean=mean, std=std, crop_padding=6,
            flip=True, n=2, m=16, pool=pool)
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
  fn = functools.partial(T.unlabeled_pair, size=48, channels=1, mean=(0.5,),
                         std=(0.5,), crop_padding=6, flip=True, n=2, m=16,
                         pool="face2exp")
  out = fn({"image": face()}, rng())
  assert out["weak"].shape == (48, 48, 1)
