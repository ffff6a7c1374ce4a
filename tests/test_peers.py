"""`python -m jaxfer.bench peers`: a Keras peer's row equals its figures
computed here by hand (the `fer` package's preprocessing, numpy metrics),
jaxfer's rows equal `jaxfer.evaluate`'s, and without keras the error says
what to install."""

import csv
import os
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import FER_SAMPLE
from conftest import config
from conftest import need
from jaxfer import evaluate
from jaxfer.bench import peers
from jaxfer.loop import train

pytestmark = pytest.mark.slow  # keras' import and compilations


def _private_rows():
  """(uint8 48x48 images, labels) of the sample's PrivateTest rows."""
  images, labels = [], []
  with open(need(FER_SAMPLE), newline="") as f:
    for row in csv.DictReader(f):
      if row["Usage"] == "PrivateTest":
        px = np.array(row["pixels"].split(), np.uint8).reshape(48, 48)
        images.append(px)
        labels.append(int(row["emotion"]))
  return images, np.array(labels)


def _macro_f1(y, p, k=7):
  f1 = []
  for c in range(k):
    tp = np.sum((p == c) & (y == c))
    prec = tp / max(np.sum(p == c), 1)
    rec = tp / max(np.sum(y == c), 1)
    f1.append(0.0 if tp == 0 else 2 * prec * rec / (prec + rec))
  return float(np.mean(f1))


def test_peer_and_jaxfer_rows(tmp_path):
  os.environ.setdefault("KERAS_BACKEND", "jax")
  keras = pytest.importorskip("keras", reason="the peers extra (keras, h5py)")
  pytest.importorskip("h5py")
  keras.utils.set_random_seed(0)
  peer = keras.Sequential(
    [
      keras.Input((64, 64, 1)),
      keras.layers.Conv2D(6, 5, strides=2),
      keras.layers.ReLU(),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(7, activation="softmax"),
    ]
  )
  path = str(tmp_path / "peer.h5")
  peer.save(path)
  c = config("supervised_fer2013", "smoke")
  c.total_steps, c.checkpoint.every, c.eval_every = 4, 4, 4
  train.run(c, str(tmp_path / "wd"))
  out = peers.run(
    path,
    data_path=str(FER_SAMPLE),
    split="PrivateTest",
    workdir=str(tmp_path / "wd"),
    batch_size=32,
  )
  # the peer by hand: grey 48 -> 64 bilinear, / 255, (x - 0.5) * 2
  images, y = _private_rows()
  x = (
    np.stack(
      [
        np.asarray(Image.fromarray(im).resize((64, 64), Image.BILINEAR))
        for im in images
      ]
    )[..., None].astype(np.float32)
    / 255
  )
  pred = peer.predict((x - 0.5) * 2, verbose=0).argmax(-1)
  row = out["peer"]
  assert row["faces"] == len(y) == 70
  assert row["accuracy"] == pytest.approx(np.mean(pred == y))
  assert row["macro_f1"] == pytest.approx(_macro_f1(y, pred))
  for k, name in enumerate(peers.labels.FER2013):
    assert row["recall"][name] == pytest.approx(np.mean(pred[y == k] == k))
  assert row["faces_per_s"] > 0
  # jaxfer's rows are jaxfer.evaluate's figures on the same split
  for flip in (False, True):
    c2 = c.copy_and_resolve_references()
    c2.data.path = str(FER_SAMPLE)
    summary, _ = evaluate.run(
      str(tmp_path / "wd"),
      c2,
      split="PrivateTest",
      model="model",
      flip=flip,
      out=str(tmp_path / f"ev{flip}"),
    )
    want = summary["models"]["model"]
    got = out["jaxfer_flip" if flip else "jaxfer"]
    for k in ("accuracy", "mean_class_accuracy", "macro_f1"):
      assert got[k] == pytest.approx(want[k], abs=1e-9), (flip, k)
  assert "| peer (peer.h5) |" in peers.table(out)


def test_without_keras_it_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "keras", None)
  with pytest.raises(ImportError, match=r"pip install 'jaxfer\[peers\]'"):
    peers.load_keras("peer.h5")
