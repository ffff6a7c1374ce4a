"""Per-example numpy/Pillow image transforms for the Grain pipeline.

Images are ``np.uint8[H, W, C]`` with C = 1 (grey, Pillow mode "L") or 3
(RGB). Random functions take an explicit ``np.random.Generator`` (Grain's
``random_map`` passes one per element) and are otherwise pure: inputs are
never written to, though an output may be a view of its input.

Here: channel conversion, resizing, crops, flips and normalisation. The
RandAugment ops are in `randaugment.py`, the composite training and
evaluation views built from both in `views.py`.
"""

import functools
import math

import numpy as np
from PIL import Image

_BILINEAR = Image.Resampling.BILINEAR


def _hw(size) -> tuple[int, int]:
  if isinstance(size, (int, np.integer)):
    return int(size), int(size)
  h, w = size
  return int(h), int(w)


def to_pil(img: np.ndarray) -> Image.Image:
  """uint8 [H, W, 1 | 3] -> a Pillow image of mode "L" or "RGB"."""
  mode = "L" if img.shape[-1] == 1 else "RGB"
  size = (img.shape[1], img.shape[0])
  return Image.frombytes(mode, size, np.ascontiguousarray(img))


def from_pil(im: Image.Image) -> np.ndarray:
  """A Pillow image -> uint8 [H, W, bands] (a fresh, writable array)."""
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
  return from_pil(to_pil(img).resize((w, h), _BILINEAR))


def center_crop(img: np.ndarray, size) -> np.ndarray:
  """The central ``size`` crop (torchvision's rounding)."""
  h, w = _hw(size)
  if img.shape[0] < h or img.shape[1] < w:
    raise ValueError(f"cannot crop {h}x{w} from {img.shape[:2]}")
  top = int(round((img.shape[0] - h) / 2))
  left = int(round((img.shape[1] - w) / 2))
  return img[top : top + h, left : left + w]


def random_crop(
  img: np.ndarray,
  size,
  rng: np.random.Generator,
  padding: int = 0,
  pad_mode: str = "reflect",
  fill: int = 0,
) -> np.ndarray:
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
    return img[top : top + h, left : left + w]
  # Reflect padding by indexing: only the crop is gathered, no padded copy.
  rows = _reflect_index(img.shape[0], padding)[top : top + h]
  cols = _reflect_index(img.shape[1], padding)[left : left + w]
  return img.take(rows, 0).take(cols, 1)


@functools.lru_cache(maxsize=64)
def _reflect_index(n: int, padding: int) -> np.ndarray:
  """Index along a reflect-padded axis of length n -> index into the axis."""
  idx = np.abs(np.arange(-padding, n + padding))
  idx = np.where(idx > n - 1, 2 * (n - 1) - idx, idx)
  idx.flags.writeable = False
  return idx


def random_resized_crop(
  img: np.ndarray,
  size,
  rng: np.random.Generator,
  scale=(0.08, 1.0),
  ratio=(3 / 4, 4 / 3),
) -> np.ndarray:
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
  return from_pil(to_pil(img).resize((out_w, out_h), _BILINEAR, box=box))


def random_flip(
  img: np.ndarray, rng: np.random.Generator, p: float = 0.5
) -> np.ndarray:
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
  if c > 1:  # over rows of W * C values: a 3-long broadcast is slow
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
