"""Image files: finding them in folders and decoding them to arrays.

Images are decoded with Pillow and keep their nature: grey modes give
``uint8[H, W, 1]``, colour modes ``uint8[H, W, 3]`` (palette, CMYK, YCbCr,
... become RGB and alpha is dropped; 16-bit grey is scaled to 8 bits). EXIF
orientation is not applied. Image files are found by extension (see
``IMAGE_EXTENSIONS``, case-insensitive); hidden files and folders (names
starting with ".") are not data and are passed over. A file that cannot be
decoded is a `DataError` naming it.
"""

import os

import numpy as np
from PIL import Image

from jaxfer.data.base import DataError

IMAGE_EXTENSIONS = frozenset(
  (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
)


def load_image(path: str, box=None) -> np.ndarray:
  """Decodes an image file to ``uint8[H, W, 1 or 3]``.

  `box` is an optional ``(x0, y0, x1, y1)`` crop, clamped to the image. A
  file that cannot be decoded, or a box outside the image, is a DataError
  naming `path`.
  """
  try:
    with Image.open(path) as im:
      if box is not None:
        im = im.crop(_clamp_box(box, im.size, path))
      return to_array(im)
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
      f"{path}: cannot decode image ({type(e).__name__}: {e})"
    ) from e


def _clamp_box(box, size, path):
  width, height = size
  x0, y0, x1, y1 = (int(v) for v in box)
  clamped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
  if clamped[2] <= clamped[0] or clamped[3] <= clamped[1]:
    # Python ints: a tuple of numpy values prints as (np.int64(50), ...).
    raise DataError(
      f"{path}: face box (x0, y0, x1, y1) = "
      f"{(x0, y0, x1, y1)} lies "
      f"outside the {width}x{height} image"
    )
  return clamped


def to_array(im: Image.Image) -> np.ndarray:
  """Pillow image -> uint8[H, W, C] with C = 1 (grey modes) or 3."""
  if im.mode.startswith("I;16") or im.mode == "I":
    grey = np.clip(np.asarray(im, np.int64), 0, 65535) >> 8
    return grey.astype(np.uint8)[..., None]
  if im.mode == "F":
    grey = np.clip(np.rint(np.asarray(im, np.float64)), 0, 255)
    return grey.astype(np.uint8)[..., None]
  if im.mode in ("1", "L", "LA", "La"):
    return np.asarray(im.convert("L"), np.uint8)[..., None]
  return np.asarray(im.convert("RGB"), np.uint8)


def verify_image(path: str) -> str | None:
  """Opens and verifies an image with Pillow; returns why it is bad, or None."""
  try:
    with Image.open(path) as im:
      im.verify()
  except Exception as e:  # pylint: disable=broad-except
    return f"{path}: cannot decode image ({type(e).__name__}: {e})"
  return None


def _raise_listing_error(error: OSError):
  raise DataError(f"cannot list {error.filename}: {error.strerror}")


def find_images(root: str) -> list[str]:
  """Sorted relative paths of the images at any depth below `root`."""
  if not os.path.isdir(root):
    raise DataError(f"image folder not found: {root}")
  found = []
  for folder, subfolders, files in os.walk(
    root, onerror=_raise_listing_error, followlinks=True
  ):
    subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    rel = os.path.relpath(folder, root)
    found += [
      f if rel == "." else os.path.join(rel, f)
      for f in files
      if not f.startswith(".")
      and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
    ]
  return sorted(found)


def missing_files(paths):
  """Yields the indices of `paths` that do not exist (one listing per dir)."""
  listings = {}
  for i, path in enumerate(paths):
    folder, base = os.path.split(path)
    if folder not in listings:
      try:
        listings[folder] = set(os.listdir(folder or "."))
      except OSError:
        listings[folder] = set()
    if base not in listings[folder]:
      yield i
