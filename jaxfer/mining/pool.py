"""Pool faces as the primitive model sees them: pixels, their hash, where
a face came from and whose it is, through the source wrappers."""

import hashlib

import numpy as np

from jaxfer.data import transforms


def pixels(image, size, channels: int) -> np.ndarray:
  """The uint8 face the model sees (before normalisation)."""
  return np.ascontiguousarray(
    transforms.resize(transforms.to_channels(image, channels), size)
  )


def blank(size, channels: int) -> np.ndarray:
  return pixels(np.zeros((1, 1, channels), np.uint8), size, channels) * 0


def pixel_hash(px: np.ndarray) -> np.uint64:
  """64 bits of BLAKE2b over a face's shape and pixels."""
  h = hashlib.blake2b(
    px.tobytes(), digest_size=8, person=str(px.shape).encode()[:16]
  )
  return np.uint64(int.from_bytes(h.digest(), "little"))


def _unwrap(pool, i: int):
  """(innermost source, its index) of pool item i through the wrappers."""
  while True:
    if hasattr(pool, "indices"):  # Subset
      pool, i = pool.parent, int(pool.indices[i])
    elif hasattr(pool, "parent"):  # Unlabeled, CenterCropped
      pool = pool.parent
    else:
      return pool, i


def source_id(pool, i: int) -> str:
  src, j = _unwrap(pool, int(i))
  if hasattr(src, "source_id"):
    return src.source_id(j)
  if hasattr(src, "paths"):
    return src.paths[j]
  return f"{src.name} row {j}"


def identities(pool) -> np.ndarray:
  """int32 identity per pool face (-1 unknown): top-level folder or MID."""
  if hasattr(pool, "indices"):  # Subset
    return identities(pool.parent)[pool.indices]
  if hasattr(pool, "parent"):  # Unlabeled, CenterCropped
    return identities(pool.parent)
  ids = getattr(pool, "identities", None)
  return (
    np.full(len(pool), -1, np.int32)
    if ids is None
    else np.asarray(ids, np.int32)
  )
