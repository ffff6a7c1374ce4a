"""Tests of the procedurally drawn default dataset."""

import numpy as np
import pytest

from jaxfer.data import labels as labels_lib
from jaxfer.data.sources import synthetic
from jaxfer.data.sources.synthetic import SyntheticFaces


def _images(ds, indices):
  return [ds[i]["image"] for i in indices]


def test_interface_attributes():
  ds = SyntheticFaces(30, seed=4, name="faces")
  assert len(ds) == 30
  assert ds.class_names == labels_lib.FER2013
  assert ds.name == "faces"
  assert ds.skipped == []
  assert ds.labels.dtype == np.int32 and ds.labels.shape == (30,)
  item = ds[3]
  assert set(item) == {"image", "label"}
  assert isinstance(item["label"], np.int32)


@pytest.mark.parametrize(
  "size,channels", [(48, 1), (48, 3), (16, 1), (33, 3), (64, 1)]
)
def test_shape_and_dtype(size, channels):
  ds = SyntheticFaces(5, image_size=size, channels=channels, seed=1)
  for i in range(len(ds)):
    image = ds[i]["image"]
    assert image.shape == (size, size, channels)
    assert image.dtype == np.uint8


def test_deterministic_regardless_of_order_and_length():
  a = SyntheticFaces(40, seed=7)
  b = SyntheticFaces(40, seed=7)
  longer = SyntheticFaces(100, seed=7)
  forward = _images(a, range(40))
  backward = _images(b, reversed(range(40)))[::-1]
  shuffled = np.random.default_rng(0).permutation(40)
  by_index = dict(zip(shuffled, _images(longer, shuffled)))
  for i in range(40):
    assert forward[i].tobytes() == backward[i].tobytes()
    assert forward[i].tobytes() == by_index[i].tobytes()
    assert forward[i].tobytes() == a[i]["image"].tobytes()  # again
  np.testing.assert_array_equal(a.labels, longer.labels[:40])


def test_rgb_deterministic():
  a, b = (
    SyntheticFaces(5, channels=3, seed=2),
    SyntheticFaces(5, channels=3, seed=2),
  )
  for i in (4, 0, 2):
    assert a[i]["image"].tobytes() == b[i]["image"].tobytes()


def test_different_seeds_differ():
  a, b = SyntheticFaces(70, seed=0), SyntheticFaces(70, seed=1)
  assert not np.array_equal(a.labels, b.labels)
  for i in range(10):
    assert a[i]["image"].tobytes() != b[i]["image"].tobytes()


def test_labels_match_items_and_are_balanced():
  ds = SyntheticFaces(70, seed=3)
  rendered = np.array([ds[i]["label"] for i in range(len(ds))])
  np.testing.assert_array_equal(rendered, ds.labels)
  np.testing.assert_array_equal(
    np.bincount(ds.labels, minlength=7), np.full(7, 10)
  )
  for n in (1, 6, 7, 703, 5000):
    counts = np.bincount(synthetic.make_labels(n, seed=9), minlength=7)
    assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_negative_and_out_of_range_index():
  ds = SyntheticFaces(10, seed=5)
  assert ds[-1]["image"].tobytes() == ds[9]["image"].tobytes()
  with pytest.raises(IndexError):
    ds[10]  # pylint: disable=pointless-statement


def test_images_are_not_constant():
  for channels in (1, 3):
    ds = SyntheticFaces(20, channels=channels, seed=6)
    images = _images(ds, range(len(ds)))
    for image in images:
      assert image.astype(np.float32).std() > 5
      assert image.max() - image.min() > 40
    if channels == 3:  # colour, not three copies of a grey image
      rgb = np.stack(images).astype(np.float32)
      assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 5


def test_expression_changes_the_face():
  # Same generator state: same identity, pose and noise; only the class
  # differs. Every pair of classes must change the pixels measurably.
  k = len(labels_lib.FER2013)
  faces = np.stack(
    [
      [synthetic.render(c, np.random.default_rng([9, j])) for c in range(k)]
      for j in range(30)
    ]
  ).astype(np.float32)
  diff = np.abs(faces[:, :, None] - faces[:, None, :]).mean(axis=(0, 3, 4, 5))
  np.testing.assert_array_equal(np.diag(diff), 0)
  off_diagonal = diff[~np.eye(k, dtype=bool)]
  assert off_diagonal.min() > 0.3, diff


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(num_examples=0),
    dict(num_examples=-3),
    dict(num_examples=5, channels=2),
    dict(num_examples=5, channels=4),
    dict(num_examples=5, image_size=15),
    dict(num_examples=5, image_size=0),
    dict(num_examples=5, seed=-1),
  ],
)
def test_bad_arguments(kwargs):
  with pytest.raises(ValueError):
    SyntheticFaces(**kwargs)
