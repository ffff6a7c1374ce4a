"""The composite views of the Grain pipeline: weak and strong training
views, the evaluation view, the labeled training item and the unlabeled
weak/strong pair (built from `transforms` and `randaugment`).

Random views take an explicit ``np.random.Generator`` and keyword-only
statics, so ``functools.partial`` can bind them; inputs are never written.
"""

import numpy as np

from jaxfer.data import randaugment
from jaxfer.data import transforms


def weak_view(img, rng, *, size, channels: int, crop_padding: int, flip: bool):
  """to_channels, resize, reflect-padded random crop of `crop_padding`
  pixels, random flip if `flip`; uint8."""
  img = transforms.resize(transforms.to_channels(img, channels), size)
  img = transforms.random_crop(img, size, rng, padding=crop_padding)
  if flip:
    img = transforms.random_flip(img, rng)
  return np.ascontiguousarray(img)


def strong_view(img, rng, *, n: int, m: float, pool: str, m_max=10.0, **weak):
  """`weak_view` (`weak`: its keywords) then `rand_augment` (`n`, `m`,
  `pool`, `m_max`); uint8."""
  img = weak_view(img, rng, **weak)
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


def labeled_train(item: dict, rng, *, mean, std, strong=None, **weak) -> dict:
  """item with "image" a normalized float32 training view; other keys kept.

  The view is `weak_view` (`weak`: its keywords), or `strong_view` when
  ``strong`` is a dict of its n, m, pool (and optionally m_max).
  """
  img = item["image"]
  img = (
    strong_view(img, rng, **weak, **strong)
    if strong
    else weak_view(img, rng, **weak)
  )
  return {**item, "image": transforms.normalize(img, mean, std)}


def unlabeled_pair(item: dict, rng, *, mean, std, **view) -> dict:
  """{"weak", "strong"}: two independent normalized views of item["image"]
  (`view`: `strong_view`'s keywords; the weak one takes its `weak_view`
  part).

  Other keys of ``item`` (if any) are kept; "image" is dropped.
  """
  weak = {k: view[k] for k in ("size", "channels", "crop_padding", "flip")}
  img = item["image"]
  out = {k: v for k, v in item.items() if k != "image"}
  out["weak"] = transforms.normalize(weak_view(img, rng, **weak), mean, std)
  out["strong"] = transforms.normalize(strong_view(img, rng, **view), mean, std)
  return out
