"""Distillation in the training loop on the real FER2013 sample: the
distilled set is written, evaluated by fresh networks (mean +- std), and
trains a supervised model mixed into the labeled set or alone."""

import json

import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import config
from conftest import need
from jaxfer.data import build as data_build
from jaxfer.data.sources import distilled
from jaxfer.loop import restore
from jaxfer.loop import train

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow


def _no_data(*args, **kwargs):
  raise AssertionError(f"a data source was opened: {args}")


def _config(module, variant):
  c = config(module, variant)
  c.data.path = str(FER_SAMPLE)
  return c


def test_distill_then_train_on_labeled_plus_distilled(tmp_path, monkeypatch):
  need(FER_SAMPLE)
  config = _config("distill_fer2013", "smoke")
  result = train.run(config, str(tmp_path / "distill"))
  for split in ("PublicTest", "PrivateTest"):
    assert 0 <= result[f"{split}/distilled/mean/accuracy"] <= 1
    accs = [result[f"{split}/distilled/{i}/accuracy"] for i in range(2)]
    assert result[f"{split}/distilled/std/accuracy"] == np.std(accs)
  arrays, meta = distilled.load_arrays(tmp_path / "distill" / "distilled")
  assert arrays["images"].shape == (7, 16, 16, 1)
  assert meta["step"] == 4 and len(arrays["lrs"]) == 3
  start = json.loads(
    (tmp_path / "distill" / "metrics.jsonl").read_text().splitlines()[0]
  )
  assert np.isfinite(start["loss"])
  # Loading the workdir (inference, selection) builds the network and the
  # state's structure only: no training image is read, the checkpoint's
  # synthetic set comes back.
  with monkeypatch.context() as m:
    m.setattr(data_build, "make_source", _no_data)
    _, _, _, state = restore.load(str(tmp_path / "distill"))
  assert state.learned["images"].shape == (7, 16, 16, 1)
  assert float(np.abs(np.asarray(state.learned["images"])).min()) > 0

  sup = _config("supervised_fer2013", "smoke")
  sup.data.image_size = 16
  sup.data.distilled.path = str(tmp_path / "distill" / "distilled")
  sup.data.distilled.ratio = 0.2
  train.run(sup, str(tmp_path / "mixed"))
  log = (tmp_path / "mixed" / "metrics.jsonl").read_text()
  assert '"split": "PrivateTest"' in log

  alone = _config("supervised_fer2013", "smoke")
  alone.data.update(
    source="distilled",
    image_size=16,
    train_split="any",
    path=str(tmp_path / "distill" / "distilled"),
  )
  alone.data.eval_splits = ()
  alone.data.cross_eval = {
    "fer": dict(source="fer2013", path=str(FER_SAMPLE), split="PrivateTest")
  }
  alone.checkpoint.best_split = "fer"
  out = train.run(alone, str(tmp_path / "alone"))
  assert 0 <= out["fer/model/accuracy"] <= 1
