"""OpenCV's frontal-face Haar cascade, and square crops with a margin.

The frontal-face Haar cascade ships inside the `opencv-python(-headless)`
4.x wheels (`cv2.data.haarcascades`): no model file, CPU only, a few
milliseconds per photo. It finds upright, roughly frontal faces, misses
profiles and heavily occluded ones and gives no landmarks;
`jaxfer.detect.mtcnn` does better and gives them. OpenCV 5 dropped the
cascades from its wheels, hence the `<5` pin of the `detect` extra. cv2 is
imported only when a detector is made.
"""

import dataclasses

import numpy as np

INSTALL = (
  "pip install 'opencv-python-headless>=4.8,<5' (a core dependency of jaxfer)"
)
CASCADE = "haarcascade_frontalface_default.xml"


@dataclasses.dataclass(frozen=True)
class Detector:
  """Haar cascade settings (OpenCV's `detectMultiScale` arguments)."""

  min_face: int = 32  # smallest face side in pixels
  scale_factor: float = 1.1
  min_neighbors: int = 5
  max_side: int = 1024  # larger photos are searched downscaled


def _cascade():
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
      f"face detection needs OpenCV: {INSTALL}; or pass "
      "--no-detect for images that are face crops"
    ) from None
  root = getattr(getattr(cv2, "data", None), "haarcascades", None)
  path = f"{root}{CASCADE}" if root else None
  cascade = cv2.CascadeClassifier(path) if path else None
  if cascade is None or cascade.empty():
    raise ImportError(
      f"OpenCV {cv2.__version__} has no {CASCADE} (cv2.data.haarcascades "
      f"{root!r}; the OpenCV 5 wheels carry no cascades): {INSTALL}"
    )
  return cv2, cascade


class FaceFinder:
  """Boxes of the faces in a photo; one cascade loaded once."""

  def __init__(self, detector: Detector = Detector()):
    self.detector = detector
    self._cv2, self._cascade = _cascade()

  def __call__(self, image: np.ndarray) -> np.ndarray:
    """int [N, 4] boxes (x, y, w, h) of the faces in a uint8 [H, W, 1|3]
    image, largest first; [0, 4] when there is none."""
    grey = (
      image[..., 0]
      if image.shape[-1] == 1
      else self._cv2.cvtColor(
        np.ascontiguousarray(image), self._cv2.COLOR_RGB2GRAY
      )
    )
    d = self.detector
    scale = min(1.0, d.max_side / max(grey.shape))
    if scale < 1.0:  # a phone photo: search a copy, boxes scaled back
      size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
      grey = self._cv2.resize(grey, size, interpolation=self._cv2.INTER_AREA)
    side = max(1, round(d.min_face * scale))
    found = self._cascade.detectMultiScale(
      np.ascontiguousarray(grey),
      scaleFactor=d.scale_factor,
      minNeighbors=d.min_neighbors,
      minSize=(side, side),
    )
    boxes = np.rint(np.asarray(found, np.float64).reshape(-1, 4) / scale)
    boxes = boxes.astype(np.int64)
    return boxes[np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")]


def expand(box, margin: float, height: int, width: int):
  """(x0, y0, x1, y1) of a square around an (x, y, w, h) box, its side the
  box's longer side times 1 + 2 * margin, clipped to the image."""
  x, y, w, h = (int(v) for v in box)
  side = max(w, h) * (1 + 2 * margin)
  cx, cy = x + w / 2, y + h / 2
  x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
  x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
  return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def crop(image: np.ndarray, box, margin: float) -> np.ndarray:
  """The face of `box` with `margin` around it (see `expand`)."""
  x0, y0, x1, y1 = expand(box, margin, *image.shape[:2])
  return image[y0:y1, x0:x1]
