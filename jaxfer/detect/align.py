"""Face alignment: a similarity transform (rotation, uniform scale,
translation) that puts a face's eyes and nose where they sit in the
training faces.

`TEMPLATE` is where MTCNN finds the eyes, the nose and the mouth corners
in FER2013's training faces, as fractions of the 48x48 crop: the mean over
1,000 Training faces drawn with seed 0 (MTCNN found 789 of them, upscaled
3x), by `template_of([src[i]["image"] for i in
np.random.default_rng(0).choice(len(src), 1000, replace=False)],
mtcnn.detect)` on `src = jaxfer.data.build.make_source(cfg, "Training")`;
`tests/test_detect.py` recomputes it on the 210-row sample.
`transform` fits the least-squares similarity (Umeyama's closed form) from
a face's landmarks (by default the eyes and the nose, the points the
expression moves least) to the template scaled to the output side;
`align` warps the photo with it (bilinear). The result is a face crop that
then goes through the model's own preprocessing, like any other crop.
"""

import numpy as np

# MTCNN's five points (x, y) on FER2013 Training faces, as fractions of the
# side: left eye, right eye, nose, left and right mouth corners.
TEMPLATE = np.array(
  [
    [0.3193, 0.3821],
    [0.6810, 0.3784],
    [0.4987, 0.5908],
    [0.3481, 0.7779],
    [0.6505, 0.7762],
  ]
)
EYES_NOSE = (0, 1, 2)


def transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """float [2, 3] similarity A with A @ [x, y, 1] closest to dst in least
  squares (Umeyama 1991, no reflection), for [N, 2] points, N >= 2."""
  src, dst = np.asarray(src, float), np.asarray(dst, float)
  mu_s, mu_d = src.mean(0), dst.mean(0)
  s, d = src - mu_s, dst - mu_d
  cov = d.T @ s / len(src)
  u, sig, vt = np.linalg.svd(cov)
  sign = np.ones(2)
  if np.linalg.det(u) * np.linalg.det(vt) < 0:
    sign[-1] = -1
  rot = u @ np.diag(sign) @ vt
  var = (s**2).sum() / len(src)
  scale = (sig * sign).sum() / var if var > 0 else 1.0
  a = scale * rot
  return np.concatenate([a, (mu_d - a @ mu_s)[:, None]], 1)


def align(
  image: np.ndarray,
  landmarks: np.ndarray,
  side: int,
  points=EYES_NOSE,
  template: np.ndarray = TEMPLATE,
) -> np.ndarray:
  """uint8 [side, side, C] crop of `image` with the face's landmarks
  ([5, 2] as MTCNN gives them) moved onto `template` * side."""
  import cv2  # pylint: disable=g-import-not-at-top

  pts = list(points)
  m = transform(np.asarray(landmarks)[pts], template[pts] * side)
  out = cv2.warpAffine(
    image,
    m,
    (side, side),
    flags=cv2.INTER_LINEAR,
    borderMode=cv2.BORDER_REPLICATE,
  )
  return out.reshape(side, side, image.shape[-1] if image.ndim == 3 else 1)


def template_of(faces, detect, upscale: int = 3) -> tuple[np.ndarray, int]:
  """(mean landmarks as fractions of the side, faces found) of square face
  crops (uint8 HWC), each upscaled `upscale` times for the detector."""
  import cv2  # pylint: disable=g-import-not-at-top

  found = []
  for face in faces:
    side = face.shape[0]
    big = cv2.resize(
      face, (side * upscale,) * 2, interpolation=cv2.INTER_LINEAR
    )
    boxes, marks, _ = detect(big.reshape(*big.shape[:2], -1))
    if len(boxes):
      found.append(marks[0] / (side * upscale))
  if not found:
    raise ValueError("no face found in any of the crops")
  return np.mean(found, 0), len(found)
