"""MTCNN in JAX: faces with five landmarks, from the weights the `mtcnn`
pip package ships.

The three networks of Zhang et al. (2016), P-Net (proposals on an image
pyramid), R-Net (refinement) and O-Net (output: box, five landmarks,
score), written as pure JAX functions of the weight lists that the `mtcnn`
wheel (MIT, version 1.0) carries in `mtcnn/assets/weights/*.lz4` (joblib
pickles; reading them needs `joblib` and `lz4`, never TensorFlow, and the
`mtcnn` package's own code, which imports TensorFlow, is never imported).
Nothing is downloaded. The cascade follows that package's: pyramid scale
0.709 from a 20-pixel smallest face, thresholds 0.6 / 0.7 / 0.8, NMS 0.5
and 0.7 (union) then 0.7 (min), boxes made square between the stages.
"""

import dataclasses
import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

INSTALL = "pip install 'jaxfer[detect]' (mtcnn, for its weights; OpenCV)"
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def weights_folder() -> pathlib.Path:
  """The `mtcnn` package's weights folder, found without importing it."""
  spec = importlib.util.find_spec("mtcnn")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(f"the MTCNN detector needs its weights: {INSTALL}")
  folder = pathlib.Path(spec.submodule_search_locations[0]) / "assets"
  folder = folder / "weights"
  if not (folder / "onet.lz4").exists():
    raise ImportError(f"no MTCNN weights in {folder}: {INSTALL}")
  return folder


@functools.cache
def load_weights() -> dict:
  """{"pnet" | "rnet" | "onet": [float32 arrays in the Keras order]}."""
  try:
    import joblib  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
      f"reading the MTCNN weights needs joblib and lz4: {INSTALL}"
    ) from e
  folder = weights_folder()
  return {
    n: [jnp.asarray(w) for w in joblib.load(folder / f"{n}.lz4")]
    for n in ("pnet", "rnet", "onet")
  }


def _conv(x, k, b):
  y = jax.lax.conv_general_dilated(
    x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  return y + b


def _prelu(x, a):
  return jnp.where(x >= 0, x, x * a)


def _pool(x, size, padding):
  return jax.lax.reduce_window(
    x, -jnp.inf, jax.lax.max, (1, size, size, 1), (1, 2, 2, 1), padding
  )


def _flatten(x):
  """Keras' Permute((2, 1, 3)) then Flatten: the Caffe order."""
  return jnp.transpose(x, (0, 2, 1, 3)).reshape(x.shape[0], -1)


def pnet(w, x):
  """(box offsets [N, h, w, 4], face probability [N, h, w])."""
  x = _pool(_prelu(_conv(x, w[0], w[1]), w[2]), 2, "SAME")
  x = _prelu(_conv(x, w[3], w[4]), w[5])
  x = _prelu(_conv(x, w[6], w[7]), w[8])
  reg = _conv(x, w[9], w[10])
  return reg, jax.nn.softmax(_conv(x, w[11], w[12]))[..., 1]


def rnet(w, x):
  """(box offsets [N, 4], face probability [N]) of 24x24 crops."""
  x = _pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, "SAME")
  x = _pool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, "VALID")
  x = _prelu(_conv(x, w[6], w[7]), w[8])
  x = _prelu(_flatten(x) @ w[9] + w[10], w[11])
  return x @ w[12] + w[13], jax.nn.softmax(x @ w[14] + w[15])[:, 1]


def onet(w, x):
  """(box offsets [N, 4], landmarks [N, 10] (x0..x4, y0..y4, relative to
  the box), face probability [N]) of 48x48 crops."""
  x = _pool(_prelu(_conv(x, w[0], w[1]), w[2]), 3, "SAME")
  x = _pool(_prelu(_conv(x, w[3], w[4]), w[5]), 3, "VALID")
  x = _pool(_prelu(_conv(x, w[6], w[7]), w[8]), 2, "SAME")
  x = _prelu(_conv(x, w[9], w[10]), w[11])
  x = _prelu(_flatten(x) @ w[12] + w[13], w[14])
  return (
    x @ w[15] + w[16],
    x @ w[17] + w[18],
    jax.nn.softmax(x @ w[19] + w[20])[:, 1],
  )


_NETS = {"pnet": jax.jit(pnet), "rnet": jax.jit(rnet), "onet": jax.jit(onet)}


@dataclasses.dataclass(frozen=True)
class Settings:
  """The cascade's settings (the `mtcnn` package's defaults)."""

  min_face: int = 20
  scale_factor: float = 0.709
  thresholds: tuple = (0.6, 0.7, 0.8)
  nms: tuple = (0.5, 0.7, 0.7, 0.7)  # per scale, pyramid, R-Net, O-Net


def scales(height: int, width: int, s: Settings) -> list[float]:
  """The image pyramid: 12 / min_face, times scale_factor while the image
  stays at least 12 pixels."""
  m, out = 12.0 / s.min_face, []
  side = min(height, width) * m
  while side >= 12:
    out.append(m * s.scale_factor ** len(out))
    side *= s.scale_factor
  return out


def iou(boxes: np.ndarray, method: str = "union") -> np.ndarray:
  """[N, N] overlaps of x1, y1, x2, y2 boxes (`min`: over the smaller)."""
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
  rb = np.minimum(boxes[:, None, 2:4], boxes[None, :, 2:4])
  inter = np.prod(np.maximum(rb - lt, 0), axis=-1)
  if method == "min":
    return inter / np.maximum(np.minimum(area[:, None], area[None]), 1e-9)
  return inter / np.maximum(area[:, None] + area[None] - inter, 1e-9)


def nms(
  boxes: np.ndarray, scores: np.ndarray, threshold: float, method="union"
):
  """Indices kept by greedy non-maximum suppression, best first."""
  order = np.argsort(-scores, kind="stable")
  if not len(order):
    return order
  over = iou(boxes[order], method) > threshold
  keep = []
  alive = np.ones(len(order), bool)
  for i in range(len(order)):
    if alive[i]:
      keep.append(order[i])
      alive &= ~over[i]
  return np.asarray(keep, int)


def square(boxes: np.ndarray) -> np.ndarray:
  """Boxes made square around their centres (the longer side)."""
  out = boxes.copy()
  w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  side = np.maximum(w, h)
  out[:, 0] = boxes[:, 0] + w / 2 - side / 2
  out[:, 1] = boxes[:, 1] + h / 2 - side / 2
  out[:, 2:4] = out[:, 0:2] + side[:, None]
  return out


def refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """Boxes moved by the networks' offsets (fractions of their sides)."""
  w = boxes[:, 2] - boxes[:, 0] + 1
  h = boxes[:, 3] - boxes[:, 1] + 1
  return boxes + offsets * np.stack([w, h, w, h], -1)


def _normalize(x: np.ndarray) -> np.ndarray:
  return (x.astype(np.float32) - 127.5) / 128.0


def _patches(cv2, image: np.ndarray, boxes: np.ndarray, size: int):
  """Each box's region of the image (zeros outside it), resized to size."""
  h, w = image.shape[:2]
  out = np.zeros((len(boxes), size, size, 3), np.float32)
  for i, (x1, y1, x2, y2) in enumerate(np.round(boxes[:, :4]).astype(int)):
    bw, bh = max(x2 - x1, 1), max(y2 - y1, 1)
    tile = np.full((bh, bw, 3), 127.5, np.float32)  # normalizes to ~0
    sx, sy = max(x1, 0), max(y1, 0)
    ex, ey = min(x2, w), min(y2, h)
    if ex > sx and ey > sy:
      tile[sy - y1 : ey - y1, sx - x1 : ex - x1] = image[sy:ey, sx:ex]
    out[i] = cv2.resize(tile, (size, size), interpolation=cv2.INTER_LINEAR)
  return _normalize(out)


def _bucket(n: int) -> int:
  """Batch sizes rounded up to a power of two: few compilations."""
  return 1 << max(n - 1, 0).bit_length()


def _run(name, weights, x):
  n = len(x)
  pad = np.zeros((_bucket(n) - n, *x.shape[1:]), x.dtype)
  outs = _NETS[name](weights[name], np.concatenate([x, pad]))
  return [np.asarray(o)[:n] for o in outs]


def detect(image: np.ndarray, settings: Settings = Settings()) -> tuple:
  """Faces of a uint8 RGB (or grey) image: (boxes float [N, 4] as x1, y1,
  x2, y2 in pixels, landmarks float [N, 5, 2] as (x, y) in `LANDMARKS`
  order, scores float [N]), best first."""
  import cv2  # pylint: disable=g-import-not-at-top

  if image.ndim == 2 or image.shape[-1] == 1:
    image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
  weights = load_weights()
  h, w = image.shape[:2]
  s = settings
  found = []
  for scale in scales(h, w, s):
    hs, ws = int(np.ceil(h * scale)), int(np.ceil(w * scale))
    small = cv2.resize(image, (ws, hs), interpolation=cv2.INTER_AREA)
    reg, prob = _NETS["pnet"](weights["pnet"], _normalize(small)[None])
    reg, prob = np.asarray(reg[0]), np.asarray(prob[0])
    ys, xs = np.nonzero(prob > s.thresholds[0])
    if not len(ys):
      continue
    # the package's cells: (2i + 1, 2i + 12), offsets in units of 11 px
    cell = np.stack([xs * 2 + 1, ys * 2 + 1, xs * 2 + 12, ys * 2 + 12], -1)
    boxes = (cell + reg[ys, xs] * 11) / scale
    scores = prob[ys, xs]
    keep = nms(boxes, scores, s.nms[0])
    found.append(np.concatenate([boxes[keep], scores[keep, None]], -1))
  if not found:
    return np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros((0,))
  cand = np.concatenate(found)
  cand = cand[nms(cand[:, :4], cand[:, 4], s.nms[1])]
  boxes = square(cand[:, :4])
  # R-Net
  offsets, scores = _run("rnet", weights, _patches(cv2, image, boxes, 24))
  boxes = refine(boxes, offsets)
  keep = scores > s.thresholds[1]
  boxes, scores = boxes[keep], scores[keep]
  keep = nms(boxes, scores, s.nms[2])
  boxes = square(boxes[keep])
  if not len(boxes):
    return np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros((0,))
  # O-Net
  offsets, marks, scores = _run(
    "onet", weights, _patches(cv2, image, boxes, 48)
  )
  bw = boxes[:, 2:3] - boxes[:, 0:1] + 1
  bh = boxes[:, 3:4] - boxes[:, 1:2] + 1
  lx = bw * marks[:, :5] + boxes[:, 0:1] - 1
  ly = bh * marks[:, 5:] + boxes[:, 1:2] - 1
  boxes = refine(boxes, offsets)
  keep = scores > s.thresholds[2]
  boxes, scores = boxes[keep], scores[keep]
  marks = np.stack([lx, ly], -1)[keep]
  keep = nms(boxes, scores, s.nms[3], method="min")
  return boxes[keep], marks[keep], scores[keep]
