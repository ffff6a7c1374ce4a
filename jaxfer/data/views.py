"""The composite views of the Grain pipeline: weak and strong training
views, the evaluation view, the labeled training item and the unlabeled
weak/strong pair (built from `transforms` and `randaugment`).

Random views take an explicit ``np.random.Generator`` and keyword-only
statics, so ``functools.partial`` can bind them; inputs are never written.
"""

import numpy as np

from jaxfer.data import randaugment
from jaxfer.data import transforms


def weak_view(
  img: np.ndarray,
  rng: np.random.Generator,
  *,
  size,
  channels: int,
  crop_padding: int = 0,
  flip: bool = True,
) -> np.ndarray:
  """to_channels, resize, reflect-padded random crop, random flip; uint8."""
  img = transforms.resize(transforms.to_channels(img, channels), size)
  img = transforms.random_crop(img, size, rng, padding=crop_padding)
  if flip:
    img = transforms.random_flip(img, rng)
  return np.ascontiguousarray(img)


def strong_view(
  img: np.ndarray,
  rng: np.random.Generator,
  *,
  size,
  channels: int,
  crop_padding: int = 0,
  flip: bool = True,
  n: int,
  m: float,
  pool: str = "face2exp",
  m_max: float = 10.0,
) -> np.ndarray:
  """`weak_view` then `rand_augment`; uint8."""
  img = weak_view(
    img, rng, size=size, channels=channels, crop_padding=crop_padding, flip=flip
  )
  return randaugment.rand_augment(img, rng, n=n, m=m, pool=pool, m_max=m_max)


def eval_pixels(image: np.ndarray, *, size, channels: int) -> np.ndarray:
  """The evaluation input before normalisation: uint8 [size, size, C],
  the channels converted (RGB -> grey: ITU-R 601 luma) and resized
  (Pillow's antialiased bilinear). Every inference path starts here:
  training's evaluation, `jaxfer.zoo.Model.preprocess` (predict, photos and
  videos) and the ONNX export (whose graph normalises)."""
  return transforms.resize(transforms.to_channels(image, channels), size)


def eval_view(item: dict, *, size, channels: int, mean, std) -> dict:
  """item with "image" converted, resized and normalized: f32 [h, w, C]."""
  img = eval_pixels(item["image"], size=size, channels=channels)
  return {**item, "image": transforms.normalize(img, mean, std)}


def labeled_train(
  item: dict,
  rng: np.random.Generator,
  *,
  size,
  channels: int,
  mean,
  std,
  crop_padding: int = 0,
  flip: bool = True,
  strong: dict | None = None,
) -> dict:
  """item with "image" a normalized float32 training view; other keys kept.

  The view is `weak_view`, or `strong_view` when ``strong`` is a dict of its
  n, m, pool (and optionally m_max).
  """
  kw = dict(size=size, channels=channels, crop_padding=crop_padding, flip=flip)
  img = item["image"]
  img = (
    strong_view(img, rng, **kw, **strong)
    if strong
    else weak_view(img, rng, **kw)
  )
  return {**item, "image": transforms.normalize(img, mean, std)}


def unlabeled_pair(
  item: dict,
  rng: np.random.Generator,
  *,
  size,
  channels: int,
  mean,
  std,
  crop_padding: int = 0,
  flip: bool = True,
  n: int,
  m: float,
  pool: str = "face2exp",
  m_max: float = 10.0,
) -> dict:
  """{"weak", "strong"}: two independent normalized views of item["image"].

  Other keys of ``item`` (if any) are kept; "image" is dropped.
  """
  kw = dict(size=size, channels=channels, crop_padding=crop_padding, flip=flip)
  img = item["image"]
  out = {k: v for k, v in item.items() if k != "image"}
  out["weak"] = transforms.normalize(weak_view(img, rng, **kw), mean, std)
  out["strong"] = transforms.normalize(
    strong_view(img, rng, **kw, n=n, m=m, pool=pool, m_max=m_max), mean, std
  )
  return out
