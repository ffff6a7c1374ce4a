"""Per-example numpy/Pillow transforms for the Grain pipeline.

Images are ``np.uint8[H, W, C]`` with C = 1 (grey, Pillow mode "L") or 3
(RGB). Random functions take an explicit ``np.random.Generator`` (Grain's
``random_map`` passes one per element) and are otherwise pure: inputs are
never written to, though an output may be a view of its input. The composite
views take keyword-only statics, so ``functools.partial`` can bind them.

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
Point ops (AutoContrast, Equalize, Invert, Posterize, Solarize) are numpy
look-up tables equal to Pillow's ``ImageOps`` (faster; and Pillow >= 10
refuses 0-bit posterize).
"""

import functools
import math

import numpy as np
from PIL import Image, ImageEnhance

_BILINEAR = Image.Resampling.BILINEAR
_BICUBIC = Image.Resampling.BICUBIC
_AFFINE = Image.Transform.AFFINE


def _hw(size) -> tuple[int, int]:
  if isinstance(size, (int, np.integer)):
    return int(size), int(size)
  h, w = size
  return int(h), int(w)


def _to_pil(img: np.ndarray) -> Image.Image:
  mode = "L" if img.shape[-1] == 1 else "RGB"
  size = (img.shape[1], img.shape[0])
  return Image.frombytes(mode, size, np.ascontiguousarray(img))


def _from_pil(im: Image.Image) -> np.ndarray:
  a = np.frombuffer(bytearray(im.tobytes()), np.uint8)
  return a.reshape(im.height, im.width, len(im.getbands()))


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
  """Grey <-> RGB; RGB -> grey with Pillow's "L" (ITU-R 601) integer luma."""
  if img.ndim == 2:
    img = img[..., None]
  c = img.shape[-1]
  if c == channels:
    return img
  if (c, channels) == (1, 3):
    return np.repeat(img, 3, axis=-1)
  if (c, channels) == (3, 1):
    x = img.astype(np.uint32)
    luma = x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471
    return ((luma + 0x8000) >> 16).astype(np.uint8)[..., None]
  raise ValueError(f"cannot convert {c} channels to {channels}")


def resize(img: np.ndarray, size) -> np.ndarray:
  """Resizes to ``size`` (int or (h, w)) with Pillow's antialiased bilinear."""
  h, w = _hw(size)
  if img.shape[:2] == (h, w):
    return img
  return _from_pil(_to_pil(img).resize((w, h), _BILINEAR))


def center_crop(img: np.ndarray, size) -> np.ndarray:
  """The central ``size`` crop (torchvision's rounding)."""
  h, w = _hw(size)
  if img.shape[0] < h or img.shape[1] < w:
    raise ValueError(f"cannot crop {h}x{w} from {img.shape[:2]}")
  top = int(round((img.shape[0] - h) / 2))
  left = int(round((img.shape[1] - w) / 2))
  return img[top:top + h, left:left + w]


def random_crop(img: np.ndarray, size, rng: np.random.Generator,
                padding: int = 0, pad_mode: str = "reflect",
                fill: int = 0) -> np.ndarray:
  """torchvision RandomCrop: pad each side by ``padding`` (an ``np.pad``
  mode; ``fill`` for "constant"), then a uniform ``size`` crop."""
  h, w = _hw(size)
  if padding and (pad_mode != "reflect" or padding >= min(img.shape[:2])):
    kw = {"constant_values": fill} if pad_mode == "constant" else {}
    p = ((padding, padding), (padding, padding), (0, 0))
    img, padding = np.pad(img, p, mode=pad_mode, **kw), 0
  height, width = img.shape[0] + 2 * padding, img.shape[1] + 2 * padding
  if height < h or width < w:
    raise ValueError(f"cannot crop {h}x{w} from {height}x{width}")
  top = int(rng.integers(height - h + 1))
  left = int(rng.integers(width - w + 1))
  if not padding:
    return img[top:top + h, left:left + w]
  # Reflect padding by indexing: only the crop is gathered, no padded copy.
  rows = _reflect_index(img.shape[0], padding)[top:top + h]
  cols = _reflect_index(img.shape[1], padding)[left:left + w]
  return img.take(rows, 0).take(cols, 1)


@functools.lru_cache(maxsize=64)
def _reflect_index(n: int, padding: int) -> np.ndarray:
  """Index along a reflect-padded axis of length n -> index into the axis."""
  idx = np.abs(np.arange(-padding, n + padding))
  idx = np.where(idx > n - 1, 2 * (n - 1) - idx, idx)
  idx.flags.writeable = False
  return idx


def random_resized_crop(img: np.ndarray, size, rng: np.random.Generator,
                        scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> np.ndarray:
  """torchvision RandomResizedCrop (10 tries, then a central crop)."""
  height, width = img.shape[:2]
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    area = height * width * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(area * aspect)))
    h = int(round(math.sqrt(area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(height - h + 1))
      left = int(rng.integers(width - w + 1))
      break
  else:
    w, h = width, height
    if width / height < min(ratio):
      h = int(round(width / min(ratio)))
    elif width / height > max(ratio):
      w = int(round(height * max(ratio)))
    top, left = (height - h) // 2, (width - w) // 2
  out_h, out_w = _hw(size)
  box = (left, top, left + w, top + h)
  return _from_pil(_to_pil(img).resize((out_w, out_h), _BILINEAR, box=box))


def random_flip(img: np.ndarray, rng: np.random.Generator,
                p: float = 0.5) -> np.ndarray:
  """Mirrors left-right with probability ``p``."""
  return img[:, ::-1] if rng.random() < p else img


def _stats(values, channels: int) -> np.ndarray:
  v = np.asarray(values, np.float32).reshape(-1)
  if v.size not in (1, channels):
    raise ValueError(f"{v.size} mean/std values for {channels} channels")
  return v if v.size == channels else np.full(channels, v[0], np.float32)


def normalize(img: np.ndarray, mean, std) -> np.ndarray:
  """float32 ``(img / 255 - mean) / std``, mean/std per channel in [0, 1]."""
  c = img.shape[-1]
  mean, std = _stats(mean, c), _stats(std, c)
  scale, shift = 1 / (255 * std), mean / std
  x = img.astype(np.float32)
  if c > 1:   # over rows of W * C values: a 3-long broadcast is slow
    cols = np.arange(img.shape[-2] * c) % c
    x, scale, shift = x.reshape(-1, cols.size), scale[cols], shift[cols]
  x *= scale
  x -= shift
  return x.reshape(img.shape)


def denormalize(x: np.ndarray, mean, std) -> np.ndarray:
  """Inverse of `normalize`, rounded and clipped to uint8 (for grids)."""
  c = x.shape[-1]
  y = (x * _stats(std, c) + _stats(mean, c)) * 255
  return np.clip(np.rint(y), 0, 255).astype(np.uint8)


# RandAugment ops: op(img, rng, lv) -> img on uint8 HWC arrays, with
# lv(max_v) = m * max_v / m_max.

_IDENTITY = np.arange(256, dtype=np.uint8)


def _per_channel(img: np.ndarray, lut_of) -> np.ndarray:
  """Maps each channel through ``lut_of(channel)`` (uint8[256])."""
  out = np.empty_like(img)
  for c in range(img.shape[-1]):
    out[..., c] = lut_of(img[..., c])[img[..., c]]
  return out


def _autocontrast_lut(x: np.ndarray) -> np.ndarray:
  lo, hi = int(x.min()), int(x.max())
  if hi <= lo:
    return _IDENTITY
  scale = 255.0 / (hi - lo)
  lut = (np.arange(256) * scale - lo * scale).astype(np.int64)
  return np.clip(lut, 0, 255).astype(np.uint8)


def _equalize_lut(x: np.ndarray) -> np.ndarray:
  h = np.bincount(x.ravel(), minlength=256)
  nonzero = h[h > 0]
  step = (nonzero.sum() - nonzero[-1]) // 255 if nonzero.size > 1 else 0
  if not step:
    return _IDENTITY
  n = step // 2 + np.concatenate([[0], np.cumsum(h)[:-1]])
  return np.minimum(n // step, 255).astype(np.uint8)


def _posterize(img: np.ndarray, bits: int) -> np.ndarray:
  return img & np.uint8((0xFF << (8 - min(max(bits, 0), 8))) & 0xFF)


def _solarize(img: np.ndarray, threshold: int) -> np.ndarray:
  return np.where(img >= threshold, 255 - img, img)


def _pil(fn):
  """Lifts ``fn(pil_image, rng, lv) -> pil_image`` to uint8 HWC arrays."""
  return lambda img, rng, lv: _from_pil(fn(_to_pil(img), rng, lv))


def _grey(im: Image.Image, v: int):
  return v if im.mode == "L" else (v,) * len(im.getbands())


def _sign(rng: np.random.Generator, v: float) -> float:
  return -v if rng.random() < 0.5 else v


def _enhance(cls):
  def op(img, rng, lv):
    if cls is ImageEnhance.Color and img.shape[-1] == 1:
      return img
    return _from_pil(cls(_to_pil(img)).enhance(lv(1.8) + 0.1))
  return op


def _affine(im: Image.Image, coeffs) -> Image.Image:
  return im.transform(im.size, _AFFINE, coeffs, _BICUBIC,
                      fillcolor=_grey(im, 128))


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
  img[y0:y1 + 1, x0:x1 + 1] = 128   # Pillow rectangles include both ends
  return img


def _cover(img, rng, lv):
  img = img.copy()
  img[:round(img.shape[0] * 51 / 224)] = 0
  return img


_COMMON = {
    "AutoContrast": lambda img, rng, lv: _per_channel(img, _autocontrast_lut),
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Color": _enhance(ImageEnhance.Color),
    "Equalize": lambda img, rng, lv: _per_channel(img, _equalize_lut),
    "Invert": lambda img, rng, lv: 255 - img,
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
        "Posterize": lambda img, rng, lv: _posterize(
            img, 8 - int(round(lv(4)))),
        "Solarize": lambda img, rng, lv: _solarize(img, 255 - int(lv(256))),
        "Rotate": _pil(lambda im, rng, lv: im.rotate(
            _sign(rng, lv(30)), _BICUBIC, fillcolor=_grey(im, 128))),
        "ShearX": _pil(lambda im, rng, lv: _affine(
            im, (1, _sign(rng, lv(0.3)), 0, 0, 1, 0))),
        "ShearY": _pil(lambda im, rng, lv: _affine(
            im, (1, 0, 0, _sign(rng, lv(0.3)), 1, 0))),
        "TranslateX": _pil(lambda im, rng, lv: _affine(
            im, (1, 0, _sign(rng, lv(_px(im.size, 4))), 0, 1, 0))),
        "TranslateY": _pil(lambda im, rng, lv: _affine(
            im, (1, 0, 0, 0, 1, _sign(rng, lv(_px(im.size, 4)))))),
        "Cutout": lambda img, rng, lv: _cutout(
            img, rng, int(lv(_px(img.shape, 4)))),
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


def apply_op(img: np.ndarray, op: str, rng: np.random.Generator, *,
             m: float, pool: str = "face2exp",
             m_max: float = 10.0) -> np.ndarray:
  """Applies one op of ``pool`` (a name in ``POOL_OPS[pool]``) always."""
  return _pool(pool)[op](img, rng, _level(m, m_max))


def rand_augment(img: np.ndarray, rng: np.random.Generator, *, n: int,
                 m: float, pool: str = "face2exp",
                 m_max: float = 10.0) -> np.ndarray:
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


def weak_view(img: np.ndarray, rng: np.random.Generator, *, size,
              channels: int, crop_padding: int = 0,
              flip: bool = True) -> np.ndarray:
  """to_channels, resize, reflect-padded random crop, random flip; uint8."""
  img = resize(to_channels(img, channels), size)
  img = random_crop(img, size, rng, padding=crop_padding)
  return np.ascontiguousarray(random_flip(img, rng) if flip else img)


def strong_view(img: np.ndarray, rng: np.random.Generator, *, size,
                channels: int, crop_padding: int = 0, flip: bool = True,
                n: int, m: float, pool: str = "face2exp",
                m_max: float = 10.0) -> np.ndarray:
  """`weak_view` then `rand_augment`; uint8."""
  img = weak_view(img, rng, size=size, channels=channels,
                  crop_padding=crop_padding, flip=flip)
  return rand_augment(img, rng, n=n, m=m, pool=pool, m_max=m_max)


def eval_view(item: dict, *, size, channels: int, mean, std) -> dict:
  """item with "image" converted, resized and normalized: f32 [h, w, C]."""
  img = resize(to_channels(item["image"], channels), size)
  return {**item, "image": normalize(img, mean, std)}


def labeled_train(item: dict, rng: np.random.Generator, *, size,
                  channels: int, mean, std, crop_padding: int = 0,
                  flip: bool = True, strong: dict | None = None) -> dict:
  """item with "image" a normalized float32 training view; other keys kept.

  The view is `weak_view`, or `strong_view` when ``strong`` is a dict of its
  n, m, pool (and optionally m_max).
  """
  kw = dict(size=size, channels=channels, crop_padding=crop_padding,
            flip=flip)
  img = item["image"]
  img = (strong_view(img, rng, **kw, **strong) if strong
         else weak_view(img, rng, **kw))
  return {**item, "image": normalize(img, mean, std)}


def unlabeled_pair(item: dict, rng: np.random.Generator, *, size,
                   channels: int, mean, std, crop_padding: int = 0,
                   flip: bool = True, n: int, m: float,
                   pool: str = "face2exp", m_max: float = 10.0) -> dict:
  """{"weak", "strong"}: two independent normalized views of item["image"].

  Other keys of ``item`` (if any) are kept; "image" is dropped.
  """
  kw = dict(size=size, channels=channels, crop_padding=crop_padding,
            flip=flip)
  img = item["image"]
  out = {k: v for k, v in item.items() if k != "image"}
  out["weak"] = normalize(weak_view(img, rng, **kw), mean, std)
  out["strong"] = normalize(
      strong_view(img, rng, **kw, n=n, m=m, pool=pool, m_max=m_max),
      mean, std)
  return out
