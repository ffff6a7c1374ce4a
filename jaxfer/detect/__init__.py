"""Faces in photos and video frames, ready for the classifier.

Two detectors: `mtcnn` (the default: boxes and five landmarks, in JAX from
the `mtcnn` wheel's weights, `jaxfer.detect.mtcnn`) and `haar` (OpenCV's
frontal-face cascade, `jaxfer.detect.haar`: boxes only). A face is cropped
as a square around its box with a margin, as FER2013's training faces
were framed; with `align=True` and landmarks it is aligned instead
(`jaxfer.detect.align`: eyes and nose onto where they sit in FER2013's
faces), which cost the shipped model accuracy on PublicTest
(`python -m jaxfer.bench detect`). Either way the crop then goes
through the model's own preprocessing (`jaxfer.zoo.Model.preprocess`).
"""

import dataclasses

import numpy as np

from jaxfer.detect import align as align_lib
from jaxfer.detect import haar
from jaxfer.detect import mtcnn

DETECTORS = ("mtcnn", "haar")  # the first is the default
# The Finder's defaults, and so `python -m jaxfer.predict`'s: faces of
# 32 px and more (MTCNN's own default, 20, adds finer pyramid scales: more
# time per photo for faces too small for a 48x48 classifier), cropped with
# 20% of the box's side around it on each side (FER2013's framing).
MIN_FACE = 32
MARGIN = 0.2


@dataclasses.dataclass
class Face:
  """box: (x, y, w, h) in the photo's pixels; landmarks: [5, 2] (x, y)
  in `mtcnn.LANDMARKS` order or None; crop: uint8 HWC face for the
  classifier; score: the detector's confidence (None for Haar)."""

  box: tuple
  landmarks: np.ndarray | None
  crop: np.ndarray
  score: float | None = None


class Finder:
  """image -> list of `Face`, largest first."""

  def __init__(
    self,
    detector: str = DETECTORS[0],
    *,
    min_face: int = MIN_FACE,
    margin: float = MARGIN,
    align: bool = False,
    side: int = 192,
  ):
    if detector not in DETECTORS:
      raise ValueError(f"detector {detector!r} is not one of {DETECTORS}")
    self.detector, self.margin, self.align, self.side = (
      detector,
      margin,
      align,
      side,
    )
    if detector == "haar":
      self._haar = haar.FaceFinder(haar.Detector(min_face=min_face))
    else:
      mtcnn.load_weights()  # the shipped weights, read once
      self._settings = mtcnn.Settings(min_face=max(12, min_face))

  def __call__(self, image: np.ndarray) -> list[Face]:
    if self.detector == "haar":
      return [
        Face(tuple(int(v) for v in b), None, haar.crop(image, b, self.margin))
        for b in self._haar(image)
      ]
    boxes, marks, scores = mtcnn.detect(image, self._settings)
    faces = []
    for (x1, y1, x2, y2), m, s in zip(boxes, marks, scores):
      box = tuple(int(round(v)) for v in (x1, y1, x2 - x1, y2 - y1))
      if self.align:
        crop = align_lib.align(image, m, self.side)
      else:
        crop = haar.crop(image, box, self.margin)
      faces.append(Face(box, m, crop, float(s)))
    return sorted(faces, key=lambda f: -f.box[2] * f.box[3])
