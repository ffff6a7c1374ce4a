"""ONNX export: onnxruntime gives jaxfer's logits on the same faces (the
export checks it and so does this test, independently); a mismatch
removes the file and names it; the metadata carries the classes and the
preprocessing; and every inference path prepares a face the same way."""

import json

import numpy as np
import pytest

from conftest import config
from jaxfer import export
from jaxfer import zoo
from jaxfer.data import build
from jaxfer.data.sources import synthetic
from jaxfer.loop import train

pytest.importorskip("jax2onnx", reason="the export extra (jax2onnx)")
ort = pytest.importorskip("onnxruntime", reason="the export extra")


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
  wd = tmp_path_factory.mktemp("export") / "wd"
  c = config("default", "smoke")
  c.total_steps, c.checkpoint.every, c.eval_every = 4, 4, 4
  train.run(c, str(wd))
  return zoo.load(str(wd), model="model")


def _faces(n=9):
  src = synthetic.SyntheticFaces(n, image_size=64, channels=3, seed=5)
  faces = [np.asarray(src[i]["image"]) for i in range(n)]
  return faces + [faces[0][3:61, 7:50]]  # RGB, another size and shape


def test_onnxruntime_gives_jaxfers_logits(clf, tmp_path):
  out = tmp_path / "m.onnx"
  faces = _faces()
  report = export.export(clf, str(out), faces)
  assert report["max_abs_logit_diff"] <= 1e-4 and out.exists()
  sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
  pixels = np.stack([clf.pixels(f) for f in faces]).astype(np.float32)
  logits, probs = sess.run(["logits", "probabilities"], {"pixels": pixels})
  np.testing.assert_allclose(probs, clf.probabilities(faces), atol=1e-5)
  assert logits.shape == (len(faces), len(clf.class_names))
  meta = (
    {p.key: p.value for p in sess.get_modelmeta().custom_metadata_map.items()}
    if False
    else sess.get_modelmeta().custom_metadata_map
  )
  assert json.loads(meta["class_names"]) == list(clf.class_names)
  pre = json.loads(meta["preprocessing"])
  assert pre["size"] == clf.config.data.image_size
  assert pre["mean"] == list(clf.config.data.mean)
  # a batch of another size: the batch axis is dynamic
  assert sess.run(["logits"], {"pixels": pixels[:3]})[0].shape[0] == 3


def test_a_mismatch_removes_the_file_and_names_it(clf, tmp_path):
  out = tmp_path / "bad.onnx"
  with pytest.raises(export.ExportMismatch, match=r"bad\.onnx.*removed"):
    export.export(clf, str(out), _faces(2), tolerance=-1.0)
  assert not out.exists()


def test_every_inference_path_prepares_a_face_the_same_way(clf):
  """Training's evaluation transform, `predict` (photos and videos both
  call `Model.probabilities` -> `Model.preprocess`) and the ONNX export's
  pixels, normalised as its graph does, give the same input."""
  d = clf.config.data
  for face in _faces(3):
    loop = build.eval_view(d)({"image": face})["image"]
    predict = clf.preprocess(face)
    onnx_in = (clf.pixels(face) / 255.0 - np.asarray(d.mean)) / np.asarray(
      d.std
    )
    np.testing.assert_array_equal(loop, predict)
    np.testing.assert_allclose(onnx_in, loop, atol=1e-6)
