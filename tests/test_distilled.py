"""A distilled set on disk (`jaxfer.data.sources.distilled`): it round-trips, loads
as a source and mixes into a labeled set at the asked ratio."""

import numpy as np
import pytest

from jaxfer.data import base
from jaxfer.data.sources import distilled
from jaxfer.loop import testing


def test_saved_set_loads_back_with_identical_arrays(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(14, 8, 8, 1)).astype(np.float32)
  labels = np.repeat(np.arange(7), 2).astype(np.int32)
  soft = rng.dirichlet(np.ones(7), 14).astype(np.float32)
  names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
  distilled.save(
    tmp_path / "d",
    images=images,
    labels=labels,
    soft_labels=soft,
    class_names=names,
    mean=(0.5,),
    std=(0.25,),
    lrs=np.array([0.1, 0.2]),
    learned_labels=True,
    objective="unroll",
  )
  arrays, meta = distilled.load_arrays(tmp_path / "d")
  np.testing.assert_array_equal(arrays["images"], images)
  np.testing.assert_array_equal(arrays["labels"], labels)
  np.testing.assert_array_equal(arrays["soft_labels"], soft)
  assert meta["images_per_class"] == 2 and meta["class_names"] == list(names)
  src = distilled.load(tmp_path / "d")
  pixels = np.clip(np.rint((images * 0.25 + 0.5) * 255), 0, 255)
  np.testing.assert_array_equal(src.images, pixels.astype(np.uint8))
  np.testing.assert_array_equal(src.labels, labels)
  np.testing.assert_array_equal(src[3]["soft_label"], soft[3])
  assert len(list(tmp_path.glob("d/distilled_*.png"))) == 7


def test_mixed_source_hits_the_ratio_and_keeps_every_row(tmp_path):
  names = testing.tiny_source().class_names
  base_src = testing.tiny_source(70)
  extra = base.ArraySource(
    np.full((7, 8, 8, 1), 255, np.uint8),
    np.arange(7, dtype=np.int32),
    names,
    name="d",
    soft_labels=np.full((7, 7), 1 / 7, np.float32),
  )
  mixed = distilled.Mixed(base_src, extra, 0.2)
  assert len(mixed) == 70 + round(0.25 * 70)
  extra_rows = [i for i in range(len(mixed)) if mixed[i]["image"].min() == 255]
  assert len(extra_rows) / len(mixed) == pytest.approx(0.2, abs=0.01)
  assert all("soft_label" in mixed[i] for i in (0, len(mixed) - 1))
  np.testing.assert_array_equal(
    mixed[0]["soft_label"], np.eye(7, dtype=np.float32)[base_src[0]["label"]]
  )
  with pytest.raises(ValueError, match="ratio must be in"):
    distilled.Mixed(base_src, extra, 1.0)
