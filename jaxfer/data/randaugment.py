"""RandAugment with the reference op pools, on uint8 HWC numpy images.

RandAugment follows the reference code: Face2Exp's ``augmentation.py`` and
MPL-pytorch's ``RandAugmentCIFAR`` (what its ``TransformMPL`` uses). An op of
range ``max_v`` gets ``lv(max_v) = m * max_v / m_max``, with ``m_max = 10``
as the reference's ``PARAMETER_MAX`` (not 30). The reference's m = 16 thus
over-drives every op; the values at m = 16:

* Brightness, Color, Contrast, Sharpness: factor ``lv(1.8) + 0.1`` = 2.98
  (no random sign: the image is never darkened or blurred).
* Posterize: face2exp keeps ``int(lv(4))`` = 6 bits (m <= 2 keeps 0 bits: a
  black image), mpl ``8 - round(lv(4))`` = 2 bits; clipped to [0, 8].
* Solarize: threshold ``256 - int(lv(256))`` (face2exp) or ``255 - ...``
  (mpl) = -153 / -154, i.e. every pixel is inverted, the same as Invert.
* mpl only: Rotate +-``lv(30)`` = 48 degrees, ShearX/Y +-``lv(0.3)`` = 0.48,
  TranslateX/Y +-``lv(4 s)`` px, Cutout box ``int(lv(4 s))`` px, and the
  final cutout ``int(lv(8 s))`` px = 12 px at 32 px, where
  ``s = min(H, W) / 32`` rescales MPL's CIFAR pixel constants (19 px at 48).

Pass ``m_max=30`` for a milder scale. Pools: "face2exp" draws n ops with
replacement from AutoContrast, Brightness, Color, Equalize, Invert,
Posterize, Sharpness, Solarize and Cover, each always applied. Cover blacks
the top rows, full width: the reference draws the inclusive rectangle
(0, 0, 224, 50) on its 224 crop, 51 rows, so here ``round(H * 51 / 224)``
rows. "mpl" draws n ops with replacement from 15 (AutoContrast, Equalize,
Invert, Rotate, Posterize, Solarize, Color, Contrast, Brightness, Sharpness,
ShearX, ShearY, TranslateX, TranslateY, Cutout), applies each with
probability p ~ U(0.2, 0.8) at the fixed magnitude m (FixMatch's
RandAugmentMC would draw it in [1, m)), then always adds the final cutout.
Geometric ops resample bicubic and fill grey 128; cutout boxes are grey 128
and, like the reference's Pillow rectangles, include both end pixels. Color
on grey is the identity (Pillow's Color blends with the grey image itself).
Point ops (AutoContrast, Equalize, Invert, Posterize, Solarize) are
Pillow's ``ImageOps``, except 0-bit Posterize, which ``ImageOps`` refuses
(Pillow >= 10) and the reference's face2exp pool reaches at m <= 2: a black
image, as the reference's own posterize computes.
"""

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

from jaxfer.data.transforms import from_pil
from jaxfer.data.transforms import to_pil

_BICUBIC = Image.Resampling.BICUBIC
_AFFINE = Image.Transform.AFFINE


# RandAugment ops: op(img, rng, lv) -> img on uint8 HWC arrays, with
# lv(max_v) = m * max_v / m_max.


def _posterize(img: np.ndarray, bits: int) -> np.ndarray:
  bits = min(max(bits, 0), 8)
  if not bits:  # ImageOps refuses 0 bits
    return np.zeros_like(img)
  return from_pil(ImageOps.posterize(to_pil(img), bits))


def _solarize(img: np.ndarray, threshold: int) -> np.ndarray:
  return from_pil(ImageOps.solarize(to_pil(img), threshold))


def _pil(fn):
  """Lifts ``fn(pil_image, rng, lv) -> pil_image`` to uint8 HWC arrays."""
  return lambda img, rng, lv: from_pil(fn(to_pil(img), rng, lv))


def _grey(im: Image.Image, v: int):
  return v if im.mode == "L" else (v,) * len(im.getbands())


def _sign(rng: np.random.Generator, v: float) -> float:
  return -v if rng.random() < 0.5 else v


def _enhance(cls):
  def op(img, rng, lv):
    if cls is ImageEnhance.Color and img.shape[-1] == 1:
      return img
    return from_pil(cls(to_pil(img)).enhance(lv(1.8) + 0.1))

  return op


def _affine(im: Image.Image, coeffs) -> Image.Image:
  return im.transform(
    im.size, _AFFINE, coeffs, _BICUBIC, fillcolor=_grey(im, 128)
  )


def _px(shape, v: float) -> float:
  """MPL's CIFAR pixel constant ``v`` at this image's scale."""
  return v * min(shape[:2]) / 32


def _cutout(img: np.ndarray, rng: np.random.Generator, v: int):
  """MPL's CutoutConst: a grey box of ``v`` px at a uniform centre."""
  h, w = img.shape[:2]
  x0 = int(max(0, rng.uniform(0, w) - v / 2))
  y0 = int(max(0, rng.uniform(0, h) - v / 2))
  x1, y1 = int(min(w, x0 + v)), int(min(h, y0 + v))
  img = img.copy()
  img[y0 : y1 + 1, x0 : x1 + 1] = 128  # Pillow rectangles include both ends
  return img


def _cover(img, rng, lv):
  img = img.copy()
  img[: round(img.shape[0] * 51 / 224)] = 0
  return img


_COMMON = {
  "AutoContrast": _pil(lambda im, rng, lv: ImageOps.autocontrast(im)),
  "Brightness": _enhance(ImageEnhance.Brightness),
  "Color": _enhance(ImageEnhance.Color),
  "Equalize": _pil(lambda im, rng, lv: ImageOps.equalize(im)),
  "Invert": _pil(lambda im, rng, lv: ImageOps.invert(im)),
  "Sharpness": _enhance(ImageEnhance.Sharpness),
}

_OPS = {
  "face2exp": {
    **_COMMON,
    "Posterize": lambda img, rng, lv: _posterize(img, int(lv(4))),
    "Solarize": lambda img, rng, lv: _solarize(img, 256 - int(lv(256))),
    "Cover": _cover,
  },
  "mpl": {
    **_COMMON,
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Posterize": lambda img, rng, lv: _posterize(img, 8 - int(round(lv(4)))),
    "Solarize": lambda img, rng, lv: _solarize(img, 255 - int(lv(256))),
    "Rotate": _pil(
      lambda im, rng, lv: im.rotate(
        _sign(rng, lv(30)), _BICUBIC, fillcolor=_grey(im, 128)
      )
    ),
    "ShearX": _pil(
      lambda im, rng, lv: _affine(im, (1, _sign(rng, lv(0.3)), 0, 0, 1, 0))
    ),
    "ShearY": _pil(
      lambda im, rng, lv: _affine(im, (1, 0, 0, _sign(rng, lv(0.3)), 1, 0))
    ),
    "TranslateX": _pil(
      lambda im, rng, lv: _affine(
        im, (1, 0, _sign(rng, lv(_px(im.size, 4))), 0, 1, 0)
      )
    ),
    "TranslateY": _pil(
      lambda im, rng, lv: _affine(
        im, (1, 0, 0, 0, 1, _sign(rng, lv(_px(im.size, 4))))
      )
    ),
    "Cutout": lambda img, rng, lv: _cutout(
      img, rng, int(lv(_px(img.shape, 4)))
    ),
  },
}

# Per pool: the range of the per-op apply probability (None: always) and the
# final cutout's max_v in 32-px units (None: no final cutout).
_POLICY = {"face2exp": (None, None), "mpl": ((0.2, 0.8), 8)}

POOL_OPS = {pool: tuple(ops) for pool, ops in _OPS.items()}


def _level(m: float, m_max: float):
  return lambda max_v: m * max_v / m_max


def _pool(pool: str) -> dict:
  if pool not in _OPS:
    raise ValueError(f"unknown RandAugment pool {pool!r}; have {list(_OPS)}")
  return _OPS[pool]


def apply_op(
  img: np.ndarray,
  op: str,
  rng: np.random.Generator,
  *,
  m: float,
  pool: str = "face2exp",
  m_max: float = 10.0,
) -> np.ndarray:
  """Applies one op of ``pool`` (a name in ``POOL_OPS[pool]``) always."""
  return _pool(pool)[op](img, rng, _level(m, m_max))


def rand_augment(
  img: np.ndarray,
  rng: np.random.Generator,
  *,
  n: int,
  m: float,
  pool: str = "face2exp",
  m_max: float = 10.0,
) -> np.ndarray:
  """RandAugment with the reference pools (see the module docstring).

  Args:
    img: uint8 [H, W, C], C = 1 or 3.
    rng: the random generator.
    n: ops drawn with replacement.
    m: magnitude; an op of range max_v gets ``m * max_v / m_max``.
    pool: "face2exp" or "mpl".
    m_max: the magnitude scale, 10 as the reference's PARAMETER_MAX.
  """
  ops = _pool(pool)
  names = POOL_OPS[pool]
  prob_range, cutout = _POLICY[pool]
  lv = _level(m, m_max)
  for k in rng.integers(len(names), size=n):
    if prob_range is not None:
      p = rng.uniform(*prob_range)
      if rng.random() > p:
        continue
    img = ops[names[k]](img, rng, lv)
  if cutout is not None:
    img = _cutout(img, rng, int(lv(_px(img.shape, cutout))))
  return img
