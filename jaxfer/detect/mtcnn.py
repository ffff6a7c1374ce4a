"""MTCNN in JAX: faces with five landmarks, from weights that ship in the
package.

The three networks of Zhang et al. (2016), P-Net (proposals on an image
pyramid), R-Net (refinement) and O-Net (output: box, five landmarks,
score), written as pure JAX functions of weight lists. The weights are
those the `mtcnn` wheel (MIT, version 1.0) carries in
`mtcnn/assets/weights/*.lz4`, converted once to `mtcnn_weights.npz` beside
this file (`convert_weights`; licence and attribution in
`MTCNN_WEIGHTS_LICENSE`), so detection needs nothing beyond the core
install: no TensorFlow, no joblib, no download. The cascade follows that
package's: pyramid scale 0.709 from a 20-pixel smallest face, thresholds
0.6 / 0.7 / 0.8, NMS 0.5 and 0.7 (union) then 0.7 (min), boxes made square
between the stages.
"""

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

WEIGHTS = pathlib.Path(__file__).with_name("mtcnn_weights.npz")
NETS = ("pnet", "rnet", "onet")
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def read_weights(path=WEIGHTS) -> dict:
  """{"pnet" | "rnet" | "onet": [float32 numpy arrays in the Keras order]}
  from an .npz written by `convert_weights`."""
  with np.load(path) as f:
    keys = sorted(f.files)
    return {n: [f[k] for k in keys if k.split("/")[0] == n] for n in NETS}


@functools.cache
def load_weights() -> dict:
  """The shipped weights as jax arrays (read once)."""
  w = read_weights()
  return {n: [jnp.asarray(a) for a in w[n]] for n in NETS}


def convert_weights(folder, out) -> None:
  """Writes `out` (.npz) from the `mtcnn` package's weights `folder`
  (`mtcnn/assets/weights`, joblib + lz4 pickles: needs `joblib` and `lz4`,
  which only this conversion uses)."""
  import joblib  # pylint: disable=g-import-not-at-top

  folder = pathlib.Path(folder)
  arrays = {
    f"{n}/{i:02d}": np.asarray(w, np.float32)
    for n in NETS
    for i, w in enumerate(joblib.load(folder / f"{n}.lz4"))
  }
  np.savez_compressed(out, **arrays)


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


def pnet(w, x, valid=None):
  """(box offsets [N, h, w, 4], face probability [N, h, w]).

  `valid` (an int array (height, width)): `x` is an image of that size
  padded at the bottom and right; the outputs of its cells, the first
  ``ceil((valid - 2) / 2) - 4`` rows and columns, equal those of the
  unpadded image exactly (the first convolution's outputs beyond it are
  masked before the pool, as the unpadded SAME pool's edge sees them),
  so images of many sizes share one compiled shape."""
  x = _prelu(_conv(x, w[0], w[1]), w[2])
  if valid is not None:
    rows = jnp.arange(x.shape[1])[:, None] < valid[0] - 2
    cols = jnp.arange(x.shape[2])[None, :] < valid[1] - 2
    x = jnp.where((rows & cols)[None, :, :, None], x, -jnp.inf)
  x = _pool(x, 2, "SAME")
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


def pnet_cells(n: int) -> int:
  """P-Net's output cells along a side of `n` pixels."""
  return -(-(n - 2) // 2) - 4


def padded_side(n: int) -> int:
  """The side a pyramid level of `n` pixels is padded to: the next of
  16 * 2^(k/2) rounded up to a multiple of 8. The pyramid's own factor is
  about 2^(-1/2), so the levels of any photo walk down the same few sides:
  a folder of photos of many sizes compiles P-Net for about as many shapes
  as one photo does (`python -m jaxfer.bench sizes`)."""
  k = max(0.0, np.ceil(2 * np.log2(max(n, 16) / 16) - 1e-9))
  return int(8 * np.ceil(16 * 2 ** (k / 2) / 8))


def _pnet_level(weights, small: np.ndarray):
  """P-Net on one pyramid level, padded to `padded_side` squares."""
  hs, ws = small.shape[:2]
  side = max(padded_side(hs), padded_side(ws))
  x = np.zeros((1, side, side, 3), np.float32)
  x[0, :hs, :ws] = _normalize(small)
  reg, prob = _NETS["pnet"](weights["pnet"], x, np.array([hs, ws]))
  oh, ow = pnet_cells(hs), pnet_cells(ws)
  return np.asarray(reg)[0, :oh, :ow], np.asarray(prob)[0, :oh, :ow]


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
    reg, prob = _pnet_level(weights, small)
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
