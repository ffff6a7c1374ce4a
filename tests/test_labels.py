"""Explicit maps between label orders."""

import numpy as np
import pytest

from jaxfer.data import labels


def test_fer2013_to_rafdb_by_name():
  m = labels.label_map(labels.FER2013, labels.RAFDB)
  for i, name in enumerate(labels.FER2013):
    assert labels.RAFDB[m[i]] == name
  # Round trip.
  back = labels.label_map(labels.RAFDB, labels.FER2013)
  np.testing.assert_array_equal(back[m], np.arange(7))


def test_missing_class_is_an_error_unless_asked():
  with pytest.raises(ValueError, match="contempt"):
    labels.label_map(labels.AFFECTNET8, labels.FER2013)
  m = labels.label_map(labels.AFFECTNET8, labels.FER2013, missing_ok=True)
  assert m[7] == -1 and labels.FER2013[m[1]] == "happy"
  np.testing.assert_array_equal(
    labels.remap(np.array([7, 1, -1]), m), [-1, 3, -1]
  )


def test_every_table_has_unique_names():
  for name, table in labels.TABLES.items():
    assert len(set(table)) == len(table), name
  with pytest.raises(ValueError, match="unknown class table"):
    labels.class_names("fer2014")


def test_relabeled_source_maps_by_name_and_counts_drops():
  from jaxfer.data.base import ArraySource  # pylint: disable=g-import-not-at-top
  from jaxfer.data.base import Relabeled  # pylint: disable=g-import-not-at-top

  images = np.zeros((8, 2, 2, 1), np.uint8)
  src = ArraySource(images, np.arange(8, dtype=np.int32), labels.AFFECTNET8)
  with pytest.raises(ValueError, match="contempt"):
    Relabeled(src, labels.FER2013)
  r = Relabeled(src, labels.FER2013, drop_unmapped=True)
  assert len(r) == 7 and r.dropped == {"unmapped_classes": 1}
  for i in range(7):
    assert labels.FER2013[r[i]["label"]] == labels.AFFECTNET8[i]
    assert r.labels[i] == r[i]["label"]
