"""MTCNN in JAX: the three networks equal their Keras definition (the
`mtcnn` package's layers, rebuilt here on Keras 3) with the shipped
weights; NMS equals a brute-force reference; on real LFW photos it finds
the one face near the centre with its landmarks where a face has them, and
nothing in blank images."""

import os
import pathlib

import numpy as np
import pytest

from conftest import LFW
from conftest import need
from jaxfer.data import images
from jaxfer.detect import mtcnn


def test_the_shipped_weights_are_the_mtcnn_package_weights(tmp_path):
  """The .npz in the package holds exactly the arrays of the `mtcnn`
  wheel's joblib pickles (the test extra installs that wheel, and its
  joblib and lz4; its code, which needs TensorFlow, is never imported)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  pytest.importorskip("joblib", reason="the test extra installs mtcnn")
  spec = importlib.util.find_spec("mtcnn")
  if spec is None:
    pytest.skip("the test extra installs the mtcnn package")
  folder = pathlib.Path(spec.submodule_search_locations[0])
  folder = folder / "assets" / "weights"
  mtcnn.convert_weights(folder, tmp_path / "w.npz")
  again, shipped = mtcnn.read_weights(tmp_path / "w.npz"), mtcnn.read_weights()
  import joblib  # pylint: disable=g-import-not-at-top

  for n in mtcnn.NETS:
    original = joblib.load(folder / f"{n}.lz4")
    assert len(shipped[n]) == len(original) == len(again[n]) > 0
    for a, b, c in zip(shipped[n], original, again[n]):
      assert a.dtype == np.float32 and a.shape == np.shape(b)
      np.testing.assert_array_equal(a, np.asarray(b))
      np.testing.assert_array_equal(a, c)


def test_a_padded_pyramid_level_gives_the_cells_of_the_unpadded_one():
  """P-Net on a level padded to `padded_side` (the first convolution's
  outputs beyond the level masked) equals P-Net on the level itself, for
  sides odd and even, square and not."""
  import jax  # pylint: disable=g-import-not-at-top

  w = mtcnn.load_weights()["pnet"]
  rng = np.random.default_rng(0)
  for hs, ws in [(12, 12), (13, 17), (31, 40), (57, 33), (100, 101)]:
    img = rng.normal(size=(1, hs, ws, 3)).astype(np.float32)
    reg, prob = mtcnn.pnet(w, img)
    side = max(mtcnn.padded_side(hs), mtcnn.padded_side(ws))
    assert side >= max(hs, ws)
    x = np.zeros((1, side, side, 3), np.float32)
    x[:, :hs, :ws] = img
    preg, pprob = jax.jit(mtcnn.pnet)(w, x, np.array([hs, ws]))
    oh, ow = mtcnn.pnet_cells(hs), mtcnn.pnet_cells(ws)
    assert prob.shape[1:] == (oh, ow)
    np.testing.assert_allclose(pprob[0, :oh, :ow], prob[0], atol=1e-6)
    np.testing.assert_allclose(preg[0, :oh, :ow], reg[0], atol=1e-5)
  # a folder of many sizes: few padded shapes
  assert len({mtcnn.padded_side(n) for n in range(12, 1025)}) <= 14


def _keras_nets():
  os.environ.setdefault("KERAS_BACKEND", "jax")
  keras = pytest.importorskip("keras", reason="the test extra has keras")
  L = keras.layers

  def block(x, filters, k, pool=None, pad="same"):
    x = L.Conv2D(filters, k)(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    return L.MaxPooling2D(pool, 2, padding=pad)(x) if pool else x

  i = keras.Input((24, 30, 3))
  x = block(i, 10, 3, 2)
  x = block(block(x, 16, 3), 32, 3)
  p = keras.Model(
    i, [L.Conv2D(4, 1)(x), L.Conv2D(2, 1, activation="softmax")(x)]
  )
  i = keras.Input((24, 24, 3))
  x = block(block(i, 28, 3, 3), 48, 3, 3, "valid")
  x = L.Flatten()(L.Permute((2, 1, 3))(block(x, 64, 2)))
  x = L.PReLU()(L.Dense(128)(x))
  r = keras.Model(i, [L.Dense(4)(x), L.Dense(2, activation="softmax")(x)])
  i = keras.Input((48, 48, 3))
  x = block(block(i, 32, 3, 3), 64, 3, 3, "valid")
  x = block(block(x, 64, 3, 2), 128, 2)
  x = L.PReLU()(L.Dense(256)(L.Flatten()(L.Permute((2, 1, 3))(x))))
  o = keras.Model(
    i,
    [L.Dense(4)(x), L.Dense(10)(x), L.Dense(2, activation="softmax")(x)],
  )
  w = mtcnn.load_weights()
  for model, name in ((p, "pnet"), (r, "rnet"), (o, "onet")):
    model.set_weights([np.asarray(a) for a in w[name]])
  return p, r, o


def test_the_networks_equal_their_keras_definition():
  p, r, o = _keras_nets()
  w = mtcnn.load_weights()
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 24, 30, 3)).astype(np.float32)
  reg, prob = mtcnn.pnet(w["pnet"], x)
  kreg, kprob = p.predict(x, verbose=0)
  np.testing.assert_allclose(reg, kreg, atol=1e-5)
  np.testing.assert_allclose(prob, kprob[..., 1], atol=1e-5)
  x = rng.uniform(-1, 1, (3, 24, 24, 3)).astype(np.float32)
  for got, want in zip(mtcnn.rnet(w["rnet"], x), r.predict(x, verbose=0)):
    want = want[:, 1] if want.shape[-1] == 2 else want
    np.testing.assert_allclose(got, want, atol=1e-5)
  x = rng.uniform(-1, 1, (3, 48, 48, 3)).astype(np.float32)
  for got, want in zip(mtcnn.onet(w["onet"], x), o.predict(x, verbose=0)):
    want = want[:, 1] if want.shape[-1] == 2 else want
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_nms_equals_a_brute_force_reference():
  rng = np.random.default_rng(1)
  xy = rng.uniform(0, 100, (60, 2))
  boxes = np.concatenate([xy, xy + rng.uniform(10, 40, (60, 2))], -1)
  scores = rng.uniform(size=60)
  for method, t in (("union", 0.5), ("min", 0.7)):
    keep, left = [], list(np.argsort(-scores))
    while left:
      i = left.pop(0)
      keep.append(i)
      a = boxes[i]
      rest = []
      for j in left:
        b = boxes[j]
        iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        area = [(c[2] - c[0]) * (c[3] - c[1]) for c in (a, b)]
        den = min(area) if method == "min" else sum(area) - inter
        if inter / den <= t:
          rest.append(j)
      left = rest
    assert list(mtcnn.nms(boxes, scores, t, method)) == keep


def test_lfw_faces_near_the_centre_with_their_landmarks():
  need(LFW)
  people = sorted(p for p in LFW.iterdir() if p.is_dir())[:40]
  one = 0
  for person in people:
    img = images.load_image(str(sorted(person.glob("*.jpg"))[0]))
    boxes, marks, scores = mtcnn.detect(img)
    if not len(boxes):
      continue
    x1, y1, x2, y2 = boxes[0]
    if abs((x1 + x2) / 2 - 125) < 25 and abs((y1 + y2) / 2 - 125) < 30:
      one += 1
      le, re, nose, ml, mr = marks[0]
      assert le[0] < nose[0] < re[0] and ml[0] < mr[0]  # image left/right
      assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])
      assert x1 <= le[0] <= x2 and y1 <= nose[1] <= y2
      assert scores[0] > 0.9
  assert one >= 38, one
  for blank in (
    np.full((200, 300, 3), 90, np.uint8),
    np.zeros((64, 64, 1), np.uint8),
  ):
    assert len(mtcnn.detect(blank)[0]) == 0


def test_similarity_transform_recovers_a_known_one_and_the_template():
  from conftest import FER_SAMPLE  # pylint: disable=g-import-not-at-top
  from jaxfer.core import defaults  # pylint: disable=g-import-not-at-top
  from jaxfer.core import presets  # pylint: disable=g-import-not-at-top
  from jaxfer.data import build  # pylint: disable=g-import-not-at-top
  from jaxfer.detect import align  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(2)
  src = rng.uniform(0, 100, (5, 2))
  th, sc, t = 0.3, 1.7, np.array([5.0, -3.0])
  rot = sc * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
  m = align.transform(src, src @ rot.T + t)
  np.testing.assert_allclose(m, np.concatenate([rot, t[:, None]], 1), atol=1e-9)
  # an aligned LFW face has its eyes and nose on the template
  need(LFW)
  img = images.load_image(str(sorted((LFW / "Aaron_Eckhart").glob("*.jpg"))[0]))
  _, marks, _ = mtcnn.detect(img)
  crop = align.align(img, marks[0], 96)
  assert crop.shape == (96, 96, 1)
  _, again, _ = mtcnn.detect(np.repeat(crop, 3, -1))
  np.testing.assert_allclose(again[0][:3] / 96, align.TEMPLATE[:3], atol=0.04)
  # the template is where MTCNN finds the points on FER2013's faces
  c = defaults.base()
  presets.fer2013(c.data)
  c.data.path, c.data.cache_dir = str(need(FER_SAMPLE)), ""
  faces = build.make_source(c.data, "Training")
  mean, n = align.template_of(
    [faces[i]["image"] for i in range(len(faces))], mtcnn.detect
  )
  assert n >= 40, n
  np.testing.assert_allclose(mean, align.TEMPLATE, atol=0.03)


def test_bench_detect_counts_lfw_faces_for_both_detectors():
  from jaxfer.bench import detect as bench_detect  # pylint: disable=g-import-not-at-top

  rows = bench_detect.lfw_rows(str(need(LFW)), 6)
  for name in ("mtcnn", "haar"):
    r = rows[name]
    assert r["photos"] == 6 and r["found"] >= 5 and r["ms_per_photo"] > 0
    assert r["found_rate"] == r["found"] / 6
  text = bench_detect.table(
    {
      "lfw": rows,
      "no_face": {
        n: {"images": 3, "images_with_a_detection": 1, "detections": 1}
        for n in rows
      },
      "alignment": {
        "split": "PublicTest",
        "faces": 10,
        "found": 8,
        "original crop": 0.5,
        "box crop": 0.25,
        "aligned": 0.375,
      },
      "model": "m",
    }
  )
  assert (
    "| mtcnn | " in text and "| aligned on eyes and nose | 37.50% |" in text
  )
