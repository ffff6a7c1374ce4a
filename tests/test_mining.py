"""Omni-supervised selection: the rule against a plain-Python greedy
reference, scores against numpy, the MS-Celeb TSV index, the mined set on
disk, and the pass (determinism, kill/resume, 1 vs 4 devices)."""

import os
import pathlib
import signal
import time

import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import LFW
from conftest import need
from conftest import spawn
from jaxfer.data.base import DataError
from jaxfer.data.sources import files
from jaxfer.data.sources import mined
from jaxfer.data.sources import msceleb
from jaxfer.mining import rules

ROOT = pathlib.Path(__file__).resolve().parents[1]


# --- the rule ----------------------------------------------------------------


def _reference(table, *, conf, agree, sim, per_class, per_identity, w, banned):
  """The rule as a plain loop: filter, dedup, then walk best first."""
  n = len(table["index"])
  score = [
    w * table["confidence"][i] + (1 - w) * table["similarity"][i]
    for i in range(n)
  ]
  ok = [
    i
    for i in range(n)
    if table["valid"][i]
    and table["confidence"][i] >= conf[table["pred"][i]]
    and (not agree or table["proto"][i] == table["pred"][i])
    and table["similarity"][i] >= sim
    and table["hash"][i] not in banned
  ]
  best = {}
  for i in sorted(ok, key=lambda i: (-score[i], table["index"][i])):
    best.setdefault(table["hash"][i], i)
  ok = sorted(best.values(), key=lambda i: (-score[i], table["index"][i]))
  kept, per_id, per_c = [], {}, {}
  for i in ok:
    c, ident = table["pred"][i], table["identity"][i]
    if (
      per_identity and ident >= 0 and per_id.get((c, ident), 0) >= per_identity
    ):
      continue
    if per_class and per_c.get(c, 0) >= per_class:
      continue
    per_id[(c, ident)] = per_id.get((c, ident), 0) + 1
    per_c[c] = per_c.get(c, 0) + 1
    kept.append(i)
  return sorted(
    kept, key=lambda i: (table["pred"][i], -score[i], table["index"][i])
  )


def _toy(n=400, c=3, seed=0):
  rng = np.random.default_rng(seed)
  conf = np.round(rng.uniform(0.3, 1.0, n), 2)  # rounded: ties happen
  return {
    "index": np.arange(n) + 1000,
    "valid": rng.uniform(size=n) > 0.05,
    "confidence": conf,
    "pred": rng.integers(0, c, n).astype(np.int32),
    "proto": rng.integers(0, c, n).astype(np.int32),
    "similarity": np.round(rng.uniform(-0.2, 1.0, n), 1),
    "identity": rng.integers(-1, 6, n).astype(np.int32),
    "hash": rng.integers(0, 300, n).astype(np.uint64),
  }


@pytest.mark.parametrize(
  "kw",
  [
    dict(
      conf=(0.5, 0.5, 0.5),
      agree=True,
      sim=0.0,
      per_class=0,
      per_identity=0,
      w=0.5,
    ),
    dict(
      conf=(0.4, 0.7, 0.9),
      agree=False,
      sim=0.3,
      per_class=7,
      per_identity=2,
      w=1.0,
    ),
    dict(
      conf=(0.6, 0.6, 0.6),
      agree=True,
      sim=-1.0,
      per_class=5,
      per_identity=1,
      w=0.0,
    ),
  ],
)
def test_rule_equals_a_plain_greedy_walk(kw):
  table = _toy()
  banned = {np.uint64(3), np.uint64(17), np.uint64(250)}
  conf = kw["conf"]
  rule = rules.Rule(
    confidence=conf,
    agree=kw["agree"],
    similarity=kw["sim"],
    per_class=kw["per_class"],
    per_identity=kw["per_identity"],
    score_weight=kw["w"],
  )
  pos, thr, counts = rules.select(rule, table, 3, banned)
  ref = _reference(
    table,
    conf=conf,
    agree=kw["agree"],
    sim=kw["sim"],
    per_class=kw["per_class"],
    per_identity=kw["per_identity"],
    w=kw["w"],
    banned=banned,
  )
  assert list(pos) == ref and len(ref) > 5
  np.testing.assert_array_equal(thr, conf)
  assert not set(table["hash"][pos]) & banned
  assert len(set(table["hash"][pos])) == len(pos)  # no duplicates
  assert counts["pool"] == 400 and counts["decodable"] == table["valid"].sum()


def test_rule_by_hand():
  """Six faces, every step checkable by eye."""
  t = {
    "index": np.arange(6),
    "valid": np.array([1, 1, 1, 1, 1, 0], bool),
    "confidence": np.array([0.99, 0.95, 0.95, 0.80, 0.97, 0.99]),
    "pred": np.array([0, 0, 0, 0, 1, 1]),
    "proto": np.array([0, 0, 0, 0, 1, 1]),
    "similarity": np.array([0.5, 0.5, 0.5, 0.5, 0.1, 0.9]),
    "identity": np.array([7, 7, 8, 7, -1, -1]),
    "hash": np.array([10, 11, 12, 13, 14, 15], np.uint64),
  }
  rule = rules.Rule(confidence=0.9, per_identity=1, score_weight=1.0)
  pos, _, _ = rules.select(rule, t, 2)
  # Face 1 ties face 2 in score but loses its identity slot to face 0;
  # face 3 fails the threshold; face 5 is undecodable.
  assert list(pos) == [0, 2, 4]
  pos, _, _ = rules.select(
    rules.Rule(confidence=0.9, per_class=2, score_weight=1.0), t, 2
  )
  assert list(pos) == [0, 1, 4]  # the tie goes to the lower index
  pos, _, _ = rules.select(
    rules.Rule(confidence=0.9, similarity=0.2), t, 2, banned={np.uint64(10)}
  )
  assert list(pos) == [1, 2]  # 0 banned, 4 not similar enough


def test_quantile_thresholds_per_class():
  t = _toy()
  rule = rules.Rule(confidence=0.5, confidence_quantile=0.75)
  thr = rules.thresholds(rule, t["confidence"], t["pred"], t["valid"], 3)
  for c in range(3):
    conf = t["confidence"][t["valid"] & (t["pred"] == c)]
    assert thr[c] == pytest.approx(max(0.5, np.quantile(conf, 0.75)))


@pytest.mark.parametrize(
  "bad, field",
  [
    (dict(confidence=1.5), "confidence"),
    (dict(confidence_quantile=1.0), "confidence_quantile"),
    (dict(per_class=-1), "per_class"),
    (dict(score_weight=2.0), "score_weight"),
  ],
)
def test_bad_rules_name_the_field(bad, field):
  with pytest.raises(ValueError, match=f"config.select.{field}"):
    rules.Rule(**bad)


# --- scores ------------------------------------------------------------------


def test_scores_equal_numpy():
  from jaxfer.mining import score  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  feats, labels = rng.normal(size=(20, 5)), np.arange(20) % 3
  unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  protos = np.stack([unit[labels == c].mean(0) for c in range(3)])
  protos /= np.linalg.norm(protos, axis=1, keepdims=True)
  np.testing.assert_allclose(
    score.prototypes(feats, labels, 3), protos, rtol=1e-5
  )
  logits, pool = rng.normal(size=(8, 3)), rng.normal(size=(8, 5))
  out = score.score(logits, pool, protos, unit, labels, knn=5)
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  u = pool / np.linalg.norm(pool, axis=1, keepdims=True)
  sims = u @ protos.T
  np.testing.assert_allclose(out["confidence"], p.max(1), rtol=1e-5)
  np.testing.assert_array_equal(out["pred"], p.argmax(1))
  np.testing.assert_array_equal(out["proto"], sims.argmax(1))
  np.testing.assert_allclose(
    out["similarity"], sims[np.arange(8), p.argmax(1)], rtol=1e-5
  )
  near = np.argsort(-(u @ unit.T), axis=1)[:, :5]
  votes = np.stack([np.bincount(labels[r], minlength=3) for r in near])
  np.testing.assert_array_equal(out["knn_pred"], votes.argmax(1))
  np.testing.assert_allclose(out["knn_share"], votes.max(1) / 5)


# --- the MS-Celeb TSV --------------------------------------------------------


def _lfw_faces(n):
  pool = files.UnlabeledFolder(str(LFW))
  faces = [pool[i]["image"] for i in range(n)]
  mids = [pool.identity_names[pool.identities[i]] for i in range(n)]
  return faces, mids


def test_tsv_index_round_trip(tmp_path):
  need(LFW)
  faces, mids = _lfw_faces(12)
  path = tmp_path / "FaceImageCroppedWithAlignment.tsv"
  msceleb.write_tsv(path, faces, mids=mids)
  src = msceleb.MsCelebTSV(str(path))
  assert len(src) == 12 and (tmp_path / (path.name + ".index.npz")).exists()
  assert [src.identity_names[i] for i in src.identities] == mids
  for i in (0, 5, 11):
    got = src[i]["image"].astype(int)
    assert got.shape == faces[i].shape
    assert np.abs(got - faces[i]).mean() < 2  # JPEG at quality 95
    assert src.source_id(i) == f"{mids[i]}/face{i}"
  # The cached index is used as it is, and rebuilt when the file changes.
  cache = tmp_path / (path.name + ".index.npz")
  stamp = cache.stat().st_mtime_ns
  assert len(msceleb.MsCelebTSV(str(path))) == 12
  assert cache.stat().st_mtime_ns == stamp
  with open(path, "a", encoding="utf-8") as f:
    f.write("\n")  # a blank line: no face
  msceleb.write_tsv(tmp_path / "more.tsv", faces[:2], mids=mids[:2])
  with open(path, "a", encoding="utf-8") as f:
    f.write((tmp_path / "more.tsv").read_text())
  again = msceleb.MsCelebTSV(str(path))
  assert len(again) == 14 and again.line_numbers[-1] == 15
  np.testing.assert_array_equal(again[13]["image"], src[1]["image"])


def test_tsv_bad_rows_name_the_line(tmp_path):
  need(LFW)
  faces, mids = _lfw_faces(4)
  path = tmp_path / "pool.tsv"
  msceleb.write_tsv(path, faces, mids=mids)
  lines = path.read_text().splitlines()
  fields = lines[2].split("\t")
  fields[-1] = "bm90IGEganBlZw=="  # base64 of "not a jpeg"
  lines[2] = "\t".join(fields)
  lines.insert(1, "m.0abc\t1\tshort row")
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"pool.tsv, line 2: 3 tab-separated"):
    msceleb.MsCelebTSV(str(path))
  src = msceleb.MsCelebTSV(str(path), on_bad="skip")
  assert len(src) == 4 and "line 2" in src.skipped[0][0]
  with pytest.raises(DataError, match=r"pool.tsv, line 4, field 'face_data'"):
    src[2]  # pylint: disable=pointless-statement
  assert src[1]["image"].shape == faces[1].shape


# --- the mined set -----------------------------------------------------------


def test_mined_set_round_trip_and_mismatch(tmp_path):
  images = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 1), np.uint8)
  labels = np.array([0, 2, 2, 1, 0])
  names = ("a", "b", "c")
  man = {
    "pool_index": [4, 9, 1, 3, 0],
    "source_id": list("vwxyz"),
    "identity": [0, 1, 1, -1, 2],
    "confidence": np.linspace(0.9, 0.99, 5),
    "similarity": np.linspace(0.1, 0.5, 5),
    "score": np.linspace(0, 1, 5),
  }
  mined.save(
    tmp_path / "m",
    images=images,
    labels=labels,
    class_names=names,
    manifest=man,
  )
  src = mined.load(tmp_path / "m")
  np.testing.assert_array_equal(src.images, images)
  rows = mined.read_manifest(tmp_path / "m")
  assert [int(r["label"]) for r in rows] == list(labels) == list(src.labels)
  assert rows[1]["class"] == "c" and rows[3]["source_id"] == "y"
  assert (tmp_path / "m" / "contact_sheet.png").exists()
  text = (tmp_path / "m" / "manifest.csv").read_text().splitlines()
  text[3] = text[3].replace(",2,c,", ",0,a,")
  (tmp_path / "m" / "manifest.csv").write_text("\n".join(text) + "\n")
  with pytest.raises(DataError, match="manifest.csv, line 4: label 0"):
    mined.load(tmp_path / "m")


# --- the pass ----------------------------------------------------------------


@pytest.fixture(scope="module")
def primitive(tmp_path_factory):
  """A tiny supervised model on the FER2013 sample, and a pool of LFW."""
  need(FER_SAMPLE)
  need(LFW)
  from conftest import config  # pylint: disable=g-import-not-at-top
  from jaxfer.loop import train  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp("mining")
  c = config("supervised_fer2013", "smoke,10pct")
  c.data.path = str(FER_SAMPLE)
  train.run(c, str(root / "primitive"))
  pool = root / "pool"
  pool.mkdir()
  for name in sorted(os.listdir(LFW))[:200]:  # 387 faces
    os.symlink(LFW / name, pool / name)
  return root


def _select_args(root, workdir, *extra):
  return [
    "--config",
    str(ROOT / "configs" / "default.py"),
    f"--config.select.model_workdir={root / 'primitive'}",
    f"--config.select.pool.path={root / 'pool'}",
    "--config.select.pool.center_crop=0.5",
    "--config.select.batch_size=8",
    "--config.select.chunk_batches=1",
    "--config.select.confidence=0.0",
    "--config.select.agree=False",
    "--config.select.per_identity=2",
    "--config.select.knn=3",
    f"--workdir={workdir}",
    *extra,
  ]


def _run(args, devices=1):
  return spawn("-m", "jaxfer.select", *args, devices=devices)


def _tables(workdir):
  out = {}
  for f in sorted((pathlib.Path(workdir) / "scores").glob("chunk_*.npz")):
    with np.load(f) as z:
      out[f.name] = {k: z[k] for k in z.files}
  return out


@pytest.mark.slow
def test_pass_mines_a_loadable_set_and_resumes_after_sigkill(primitive):
  root = primitive
  whole = _run(_select_args(root, root / "whole"))
  out, _ = whole.communicate(timeout=600)
  assert whole.returncode == 0, out
  assert "kept" in out
  # Killed once a few score tables exist, then run again to the end.
  p = _run(_select_args(root, root / "killed"))
  scores = root / "killed" / "scores"
  deadline = time.time() + 300
  while len(list(scores.glob("chunk_*[0-9].npz"))) < 3:
    assert p.poll() is None and time.time() < deadline
    time.sleep(0.02)
  p.send_signal(signal.SIGKILL)
  p.wait()
  n_before = len(list(scores.glob("chunk_*[0-9].npz")))
  again = _run(_select_args(root, root / "killed"))
  out2, _ = again.communicate(timeout=600)
  assert again.returncode == 0, out2
  a, b = _tables(root / "whole"), _tables(root / "killed")
  assert len(a) > n_before and a.keys() == b.keys()
  for name in a:
    for k in a[name]:
      np.testing.assert_array_equal(a[name][k], b[name][k], err_msg=name + k)
  assert mined.read_manifest(root / "whole" / "mined") == mined.read_manifest(
    root / "killed" / "mined"
  )
  # The mined set loads back as a labeled source with the manifest's labels,
  # and its faces are the pool faces the manifest names.
  src = mined.load(root / "whole" / "mined")
  rows = mined.read_manifest(root / "whole" / "mined")
  assert len(src) == len(rows) > 0
  assert [int(r["label"]) for r in rows] == list(src.labels)
  counts = {}
  for r in rows:
    key = (r["label"], r["identity"])
    counts[key] = counts.get(key, 0) + 1
  assert max(counts.values()) <= 2  # the identity cap
  assert all(r["source_id"].startswith(str(root / "pool")) for r in rows)
  # A resumed workdir with other settings is an error, not a mix.
  bad = _run(_select_args(root, root / "whole", "--config.select.knn=5"))
  out3, _ = bad.communicate(timeout=600)
  assert bad.returncode == 1 and "knn" in out3 and "another workdir" in out3


@pytest.mark.slow
def test_pass_on_four_devices_equals_one(primitive):
  root = primitive
  ref = _run(_select_args(root, root / "one"))
  four = _run(_select_args(root, root / "four"), devices=4)
  for p in (ref, four):
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
  a, b = _tables(root / "one"), _tables(root / "four")
  assert a.keys() == b.keys()
  for name in a:
    for k in (
      "index",
      "valid",
      "pred",
      "proto",
      "hash",
      "identity",
      "knn_pred",
    ):
      np.testing.assert_array_equal(a[name][k], b[name][k])
    for k in ("confidence", "similarity", "max_similarity"):
      np.testing.assert_allclose(a[name][k], b[name][k], atol=1e-5)
  # The same faces kept; their scores agree to float32 rounding (4
  # devices reduce in another order).
  one, four = (mined.read_manifest(root / w / "mined") for w in ("one", "four"))
  floats = ("confidence", "similarity", "score")
  assert len(one) == len(four) > 0
  for r, q in zip(one, four):
    assert {k: v for k, v in r.items() if k not in floats} == {
      k: v for k, v in q.items() if k not in floats
    }
    for k in floats:
      assert float(r[k]) == pytest.approx(float(q[k]), abs=1e-5)


@pytest.mark.slow
def test_pass_over_an_msceleb_tsv_and_the_rest_of_training(primitive):
  """The TSV pool (MIDs are the identities) and the rest of the training
  split, whose hidden labels give the precision of the mined labels."""
  root = primitive
  faces, mids = _lfw_faces(40)
  tsv = root / "pool.tsv"
  msceleb.write_tsv(tsv, faces, mids=mids)
  common = _select_args(
    root,
    root / "tsv",
    "--config.select.per_identity=1",
    "--config.select.pool.source=msceleb_tsv",
    f"--config.select.pool.path={tsv}",
  )
  rest = _select_args(
    root,
    root / "rest",
    "--config.select.pool.source=rest",
    "--config.select.pool.center_crop=1.0",
  )
  procs = [_run(common), _run(rest)]
  for p in procs:
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
  rows = mined.read_manifest(root / "tsv" / "mined")
  assert rows and all(r["source_id"].split("/")[0] in mids for r in rows)
  keys = [(r["label"], r["source_id"].split("/")[0]) for r in rows]
  assert len(keys) == len(set(keys))  # one face per MID and class
  import json  # pylint: disable=g-import-not-at-top

  summary = json.loads((root / "rest" / "selection.json").read_text())
  rows = mined.read_manifest(root / "rest" / "mined")
  right = [r["label"] == r["true_label"] for r in rows]
  assert summary["precision_all"] == pytest.approx(np.mean(right))
  assert (root / "rest" / "precision.png").exists()
