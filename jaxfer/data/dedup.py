"""Evaluation rows whose pixels equal a training row's.

FER2013's PublicTest and PrivateTest hold faces that also occur in
Training, pixel for pixel; `python -m jaxfer.evaluate` reports its figures
with and without them.
"""

import hashlib

import numpy as np


def _digests(src) -> list[bytes]:
  images = getattr(src, "images", None)
  if images is None:
    images = (src[i]["image"] for i in range(len(src)))
  return [
    hashlib.sha1(np.ascontiguousarray(im).tobytes()).digest() for im in images
  ]


def also_in(src, other) -> np.ndarray:
  """bool [len(src)]: the rows of `src` whose image equals, pixel for
  pixel, an image of `other`."""
  seen = set(_digests(other))
  return np.array([d in seen for d in _digests(src)], bool)
