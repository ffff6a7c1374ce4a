"""Grain streams: determinism, exact resume, process sharding, splits."""

import itertools

import numpy as np
import pytest

from jaxfer.data import pipeline
from jaxfer.data.base import DataError
from jaxfer.data.base import Unlabeled
from jaxfer.loop import testing


def _stream(src=None, balanced=False):
  src = src or testing.tiny_source()
  return pipeline.Stream(src, testing.noisy_view, balanced, 7)


def _take(ds, n):
  return [b for b in itertools.islice(iter(ds), n)]


def _equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])


def test_same_seed_same_batches_other_seed_differs():
  a = _take(pipeline.train_dataset(_stream(), batch_size=8, seed=1), 3)
  b = _take(pipeline.train_dataset(_stream(), batch_size=8, seed=1), 3)
  c = _take(pipeline.train_dataset(_stream(), batch_size=8, seed=2), 3)
  for x, y in zip(a, b):
    _equal(x, y)
  assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_epochs_cover_every_row_once():
  src = testing.tiny_source(n=24)
  picker = pipeline.Stream(src, testing.noisy_view).picker(0)
  for epoch in range(2):
    seen = sorted(picker(e) for e in range(epoch * 24, epoch * 24 + 24))
    assert seen == list(range(24))
  assert [picker(e) for e in range(24)] != [picker(e) for e in range(24, 48)]


def test_iterator_state_resumes_exactly():
  ds = pipeline.train_dataset(_stream(), batch_size=8, seed=3)
  it = iter(ds)
  _take(it, 2)
  state = it.get_state()
  expected = _take(it, 3)
  it2 = iter(pipeline.train_dataset(_stream(), batch_size=8, seed=3))
  it2.set_state(state)
  for x, y in zip(expected, _take(it2, 3)):
    _equal(x, y)


def test_process_shards_assemble_the_global_batch():
  glob = _take(pipeline.train_dataset(_stream(), batch_size=8, seed=5), 2)
  parts = [
    _take(
      pipeline.train_dataset(
        _stream(), batch_size=8, seed=5, process_index=p, process_count=2
      ),
      2,
    )
    for p in range(2)
  ]
  for i in range(2):
    for k in glob[i]:
      np.testing.assert_array_equal(
        glob[i][k], np.concatenate([parts[0][i][k], parts[1][i][k]])
      )
  with pytest.raises(ValueError, match="not divisible"):
    pipeline.train_dataset(_stream(), batch_size=9, seed=0, process_count=2)


def test_unlabeled_pairs_shapes():
  src = testing.tiny_source()
  ds = pipeline.train_dataset(
    _stream(src),
    batch_size=4,
    seed=0,
    mu=3,
    unlabeled=pipeline.Stream(Unlabeled(src), testing.pair_view),
  )
  b = _take(ds, 1)[0]
  assert b["image"].shape == (4, 8, 8, 1)
  assert b["unlabeled_weak"].shape == (12, 8, 8, 1)
  assert b["unlabeled_strong"].shape == (12, 8, 8, 1)
  assert not np.array_equal(b["unlabeled_weak"], b["unlabeled_strong"])


def test_balanced_sampling_is_uniform_over_classes():
  labels = np.array([0] * 90 + [1] * 9 + [2] * 1, np.int32)
  pick = pipeline._balanced_picker(labels, 3, seed=0)
  counts = np.bincount(labels[[pick(e) for e in range(3000)]], minlength=3)
  assert np.all(np.abs(counts / 3000 - 1 / 3) < 0.04), counts
  with pytest.raises(DataError, match="class 2 has no examples"):
    pipeline._balanced_picker(np.array([0, 1]), 3, seed=0)


def test_split_labeled_is_balanced_disjoint_deterministic():
  labels = np.repeat(np.arange(7), [400, 50, 400, 700, 480, 310, 490])
  lab, rest = pipeline.split_labeled(labels, 0.1, num_classes=7, seed=0)
  per = round(0.1 * len(labels) / 7)
  assert np.bincount(labels[lab]).tolist() == [per] * 7
  assert len(np.intersect1d(lab, rest)) == 0
  assert len(lab) + len(rest) == len(labels)
  again, _ = pipeline.split_labeled(labels, 0.1, num_classes=7, seed=0)
  other, _ = pipeline.split_labeled(labels, 0.1, num_classes=7, seed=1)
  np.testing.assert_array_equal(lab, again)
  assert not np.array_equal(lab, other)
  with pytest.raises(DataError, match="class 1 has 50 examples"):
    pipeline.split_labeled(labels, 0.3, num_classes=7, seed=0)
  strat, _ = pipeline.split_labeled(
    labels, 0.3, num_classes=7, seed=0, balanced=False
  )
  assert np.bincount(labels[strat])[1] == 15


def test_eval_batches_see_every_example_once():
  src = testing.tiny_source(n=21)
  tf = lambda item: {"image": item["image"], "label": item["label"]}
  for pc in (1, 2):
    seen = []
    for p in range(pc):
      for b in pipeline.eval_batches(
        src, tf, batch_size=8, process_index=p, process_count=pc
      ):
        assert b["image"].shape[0] == 8 // pc
        seen += b["image"][b["mask"] > 0, 0, 0, 0].tolist()
    assert sorted(seen) == list(range(21))
