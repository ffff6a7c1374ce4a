"""Distillation targets: an ensemble's probabilities written by
`jaxfer.evaluate`, read back as the labeled stream's soft targets, rows
matched by id (numpy references written here)."""

import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import config
from conftest import need
from jaxfer import evaluate
from jaxfer import zoo
from jaxfer.core import defaults
from jaxfer.data import base
from jaxfer.data import build
from jaxfer.data import teacher
from jaxfer.loop import evaluation
from jaxfer.loop import train

NAMES = ("a", "b", "c")


def _probs(n, c, seed=0):
  p = np.random.default_rng(seed).random((n, c)).astype(np.float32) + 0.1
  return p / p.sum(1, keepdims=True)


def _src(rows, labels, soft=None):
  images = np.zeros((len(rows), 4, 4, 1), np.uint8)
  s = base.ArraySource(images, np.array(labels, np.int32), NAMES, "toy", soft)
  s.rows = np.array(rows)
  return s


def _file(tmp_path, rows, p, names=NAMES):
  path = str(tmp_path / "t.npz")
  teacher.save(path, p, rows, names, members="x")
  return path


def test_row_ids_survive_subsets_and_dropped_classes(tmp_path):
  # rows 11 and 13 have class "c", which ("b", "a") lacks: dropped
  src = _src([10, 11, 12, 13, 14], [0, 2, 1, 2, 0])
  r = base.Relabeled(src, ("b", "a"), drop_unmapped=True)
  assert r.rows.tolist() == [10, 12, 14] and r.labels.tolist() == [1, 0, 1]
  sub = base.Subset(r, [2, 0])
  assert sub.rows.tolist() == [14, 10]
  assert base.Subset(base.Subset(src, [4, 1, 3]), [2, 0]).rows.tolist() == [
    13,
    14,
  ]
  # without ids, positions are the ids
  bare = base.ArraySource(np.zeros((3, 4, 4, 1), np.uint8), [0, 1, 2], NAMES)
  assert base.row_ids(base.Subset(bare, [2, 0])).tolist() == [2, 0]
  # a teacher file written from the relabeled source finds the same rows
  p = _probs(3, 2)
  path = _file(tmp_path, base.row_ids(r), p, names=("b", "a"))
  two = _src([14, 12], [1, 0])
  two.class_names = ("b", "a")
  np.testing.assert_allclose(
    teacher.targets(two, teacher.load(path), 1.0, path), p[[2, 1]]
  )


def test_targets_mix_teacher_and_labels_by_row_id(tmp_path):
  p = _probs(5, 3)
  path = _file(tmp_path, [3, 7, 10, 99, 0], p)
  src = _src([10, 3, 7], [2, 0, 1])
  cfg = defaults.data().teacher
  cfg.path, cfg.weight = path, 0.25
  out = teacher.attach(src, cfg)
  onehot = np.eye(3)[[2, 0, 1]]
  want = 0.25 * p[[2, 0, 1]] + 0.75 * onehot
  np.testing.assert_allclose(out.soft_labels, want, rtol=1e-6)
  np.testing.assert_allclose(out[0]["soft_label"], want[0], rtol=1e-6)
  assert out[0]["label"] == 2 and (out.rows == src.rows).all()
  # an existing soft label (FER+ votes) is the original target instead
  soft = _probs(3, 3, seed=1)
  out = teacher.attach(_src([10, 3, 7], [2, 0, 1], soft), cfg)
  np.testing.assert_allclose(
    out.soft_labels, 0.25 * p[[2, 0, 1]] + 0.75 * soft, rtol=1e-6
  )


def test_missing_rows_other_classes_and_bad_files_are_errors(tmp_path):
  path = _file(tmp_path, [3, 7], _probs(2, 3))
  cfg = defaults.data().teacher
  cfg.path = path
  with pytest.raises(base.DataError, match=r"1 rows of toy .*\[10\]"):
    teacher.attach(_src([10, 3], [0, 1]), cfg)
  other = _file(tmp_path, [3, 7], _probs(2, 3), names=("a", "c", "b"))
  cfg.path = other
  with pytest.raises(base.DataError, match="t.npz: classes"):
    teacher.attach(_src([3, 7], [0, 1]), cfg)
  bad = _probs(2, 3)
  bad[1] *= 2
  np.savez(
    tmp_path / "bad.npz",
    probabilities=bad,
    rows=np.array([3, 7]),
    class_names=np.array(NAMES),
  )
  with pytest.raises(base.DataError, match=r"bad.npz: row id 7 \(entry 1\)"):
    teacher.load(str(tmp_path / "bad.npz"))
  with pytest.raises(base.DataError, match="not found"):
    teacher.load(str(tmp_path / "none.npz"))
  cfg.path, cfg.weight = path, 0.0
  with pytest.raises(ValueError, match="weight"):
    teacher.attach(_src([3, 7], [0, 1]), cfg)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
  """Two smoke workdirs of different seeds."""
  out = []
  for seed in (0, 1):
    wd = tmp_path_factory.mktemp("teacher") / f"wd{seed}"
    c = config("default", "smoke")
    c.total_steps, c.checkpoint.every, c.eval_every = 4, 4, 4
    c.seed = seed
    train.run(c, str(wd))
    out.append((str(wd), c))
  return out


def test_ensemble_is_the_mean_of_its_members(two_models, tmp_path):
  (wa, c), (wb, _) = two_models
  ma, mb = (zoo.load(w).select() for w in (wa, wb))
  one = [
    evaluation.ensemble_split(
      [(m.apply, next(iter(m.variables.values())))],
      m.class_names,
      c.data,
      "test",
    )
    for m in (ma, mb)
  ]
  # one member: the loop's own evaluation of that model
  ref = evaluation.evaluate_split(
    ma.apply, ma.variables, ma.class_names, c.data, "test"
  ).results
  ((m_ref, _),) = ref.values()
  for k in ("accuracy", "macro_f1", "loss"):
    assert one[0].metrics[k] == pytest.approx(m_ref[k], abs=1e-5)
  summary, out = evaluate.run(
    f"{wa},{wb}",
    c,
    split="test",
    out=str(tmp_path / "o"),
    probabilities_out=str(tmp_path / "p.npz"),
  )
  mean = (one[0].probabilities + one[1].probabilities) / 2
  t = teacher.load(str(tmp_path / "p.npz"))
  np.testing.assert_allclose(t["probabilities"], mean, atol=1e-6)
  assert (t["rows"] == np.arange(len(mean))).all()
  assert t["class_names"] == tuple(ma.class_names)
  m = summary["models"]["ensemble"]
  labels = one[0].labels
  assert m["accuracy"] == pytest.approx((mean.argmax(1) == labels).mean())
  assert m["loss"] == pytest.approx(
    -np.log(mean[np.arange(len(labels)), labels]).mean(), rel=1e-5
  )
  assert summary["members"] == [f"{wa}:model", f"{wb}:model"]
  assert (out / "confusion_ensemble.png").exists()


def test_teacher_file_reaches_the_labeled_stream_of_fer2013(tmp_path):
  need(FER_SAMPLE)
  c = config("supervised_fer2013", "smoke")
  full = build.make_source(c.data, "Training")
  p = _probs(len(full), 7, seed=3)
  # the file holds the rows in reverse order, and one extra row
  rows = np.concatenate([full.rows[::-1], [10**6]])
  p_file = np.concatenate([p[::-1], _probs(1, 7)])
  c.data.teacher.path = _file(tmp_path, rows, p_file, names=full.class_names)
  c.data.teacher.weight = 0.5
  c.data.labeled_fraction = 0.5
  _, labeled, _ = build.labeled_split(c.data)
  idx = labeled.indices
  got = np.stack([labeled[i]["soft_label"] for i in range(len(labeled))])
  want = 0.5 * p[idx] + 0.5 * np.eye(7)[full.labels[idx]]
  np.testing.assert_allclose(got, want, rtol=1e-6)
