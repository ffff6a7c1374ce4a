"""FER2013 CSV and FER+ parsing: good files, bad rows, the real file."""

import bz2
import gzip
import json

import numpy as np
import pytest

from conftest import FER_DIR
from conftest import FER_FULL
from conftest import FER_SAMPLE
from conftest import need
from jaxfer.data import labels
from jaxfer.data.base import DataError
from jaxfer.data.sources import fer2013


def _write(tmp_path, rows, name="f.csv", header="emotion,pixels,Usage"):
  path = tmp_path / name
  path.write_text("\n".join([header] + rows) + "\n")
  return str(path)


def _row(label=3, usage="Training", value=7, n=2304):
  return f"{label},{' '.join([str(value)] * n)},{usage}"


def test_parses_rows_and_splits(tmp_path):
  path = _write(
    tmp_path,
    [_row(0, value=1), _row(6, "PublicTest", 2), _row(5, "PrivateTest", 255)],
  )
  src = fer2013.fer2013(path, split=("Training", "PrivateTest"))
  assert len(src) == 2 and src.class_names == labels.FER2013
  assert (
    src[0]["image"].shape == (48, 48, 1) and src[0]["image"].dtype == np.uint8
  )
  assert list(src.labels) == [0, 5] and src[1]["image"].max() == 255
  assert list(src.rows) == [0, 2]


@pytest.mark.parametrize(
  "opener,suffix", [(gzip.open, ".gz"), (bz2.open, ".bz2")]
)
def test_compressed(tmp_path, opener, suffix):
  path = tmp_path / f"f.csv{suffix}"
  with opener(path, "wt") as f:
    f.write("emotion,pixels,Usage\n" + _row(2) + "\n")
  assert fer2013.fer2013(str(path)).labels.tolist() == [2]


@pytest.mark.parametrize(
  "row,needle",
  [
    (_row(n=2303), "2303 values, expected 2304"),
    (_row(value=256), "token 0 is 256, outside [0, 255]"),
    (
      "3," + " ".join(["1"] * 10 + ["x1"] + ["1"] * 2293) + ",Training",
      "token 10 is 'x1', not an integer",
    ),
    (_row(label=7), "field 'emotion': '7' is not a label"),
    (_row(label="a"), "field 'emotion'"),
    (_row(usage="Valid"), "field 'Usage': 'Valid'"),
    ("3,1 2 3", "2 fields, expected 3"),
  ],
)
def test_bad_row_names_file_and_row(tmp_path, row, needle):
  path = _write(tmp_path, [_row(), row, _row()])
  with pytest.raises(DataError) as e:
    fer2013.parse_csv(path)
  assert needle in str(e.value)
  assert path in str(e.value) and "data row 1 (line 3)" in str(e.value)


def test_skip_is_opt_in_and_counted(tmp_path):
  path = _write(tmp_path, [_row(1), _row(n=5), _row(2)])
  src = fer2013.fer2013(path, on_bad="skip")
  assert src.labels.tolist() == [1, 2] and list(src.rows) == [0, 2]
  assert len(src.skipped) == 1 and ":3" in src.skipped[0][0]


def test_bad_header_and_missing_file(tmp_path):
  with pytest.raises(DataError, match="header"):
    fer2013.parse_csv(_write(tmp_path, [_row()], header="a,b,c"))
  with pytest.raises(DataError, match="not found"):
    fer2013.parse_csv(str(tmp_path / "nope.csv"))


def test_disk_cache_round_trip(tmp_path):
  path = _write(tmp_path, [_row(4, value=9)])
  fer2013.load_arrays.cache_clear()
  a = fer2013.fer2013(path, cache_dir=str(tmp_path / "cache"))
  assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
  fer2013.load_arrays.cache_clear()
  b = fer2013.fer2013(path, cache_dir=str(tmp_path / "cache"))
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)


def test_disk_cache_under_home_expands_the_tilde(tmp_path, monkeypatch):
  """`~/...` is the user's home, never a folder named "~" where the
  command runs (any caller of load_arrays, not only the config's)."""
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.chdir(tmp_path)
  path = _write(tmp_path, [_row(4, value=9)])
  fer2013.load_arrays.cache_clear()
  fer2013.load_arrays(path, cache_dir="~/.cache/jaxfer")
  assert len(list((tmp_path / "home" / ".cache" / "jaxfer").glob("*.npz"))) == 1
  assert not (tmp_path / "~").exists()


def test_ferplus_majority_soft_and_not_face(tmp_path):
  path = _write(tmp_path, [_row(0), _row(1), _row(2)])
  fp = tmp_path / "ferplus" / "fer2013new.csv"
  fp.parent.mkdir()
  fp.write_text(
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,"
    "disgust,fear,contempt,unknown,NF\n"
    "Training,a.png,1,6,0,0,0,0,0,3,0,0\n"
    "Training,,0,0,0,0,0,0,0,0,0,10\n"
    "Training,c.png,0,0,2,0,0,0,0,0,2,0\n"
  )
  src = fer2013.fer2013(path, ferplus="majority")
  assert src.class_names == labels.FERPLUS
  assert src.labels.tolist() == [1]  # the NF and the unknown tie dropped
  assert src.dropped == {"ferplus_unknown_or_not_face": 2}
  soft = fer2013.fer2013(path, ferplus="soft")
  np.testing.assert_allclose(
    soft[0]["soft_label"], [0.1, 0.6, 0, 0, 0, 0, 0, 0.3]
  )


def test_ferplus_soft_train_targets_in_fer2013_order(tmp_path):
  """Training: FER+ votes over FER2013's 7 classes (contempt left out),
  original labels kept; a row with no vote for the 7 is dropped and
  counted; other splits are untouched."""
  path = _write(tmp_path, [_row(3), _row(0), _row(6), _row(4, "PublicTest")])
  fp = tmp_path / "ferplus" / "fer2013new.csv"
  fp.parent.mkdir()
  # columns: neutral, happiness, surprise, sadness, anger, disgust, fear,
  # contempt, unknown, NF
  fp.write_text(
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,"
    "disgust,fear,contempt,unknown,NF\n"
    "Training,a.png,1,6,0,0,0,0,0,3,0,0\n"
    "Training,b.png,0,0,0,0,2,0,1,1,0,0\n"
    "Training,c.png,0,0,0,0,0,0,0,4,3,3\n"
    "PublicTest,d.png,0,0,0,9,0,0,0,0,0,1\n"
  )
  src = fer2013.fer2013(path, ferplus="soft_train")
  assert src.class_names == labels.FER2013
  assert src.labels.tolist() == [3, 0]  # the original labels
  assert src.dropped == {"ferplus_no_vote_for_the_7_classes": 1}
  # FER2013 order: angry, disgust, fear, happy, sad, surprise, neutral
  np.testing.assert_allclose(
    src[0]["soft_label"], np.array([0, 0, 0, 6, 0, 0, 1]) / 7, rtol=1e-6
  )
  np.testing.assert_allclose(
    src[1]["soft_label"], np.array([2, 0, 1, 0, 0, 0, 0]) / 3, rtol=1e-6
  )
  test = fer2013.fer2013(path, split="PublicTest", ferplus="soft_train")
  assert test.labels.tolist() == [4] and "soft_label" not in test[0]


def test_sample_file_matches_full_file_rows():
  need(FER_SAMPLE)
  src = fer2013.fer2013(str(FER_SAMPLE), split=fer2013.SPLITS)
  assert len(src) == 210
  counts = np.bincount(src.labels, minlength=7)
  assert counts.tolist() == [30] * 7


@pytest.mark.slow
def test_real_fer2013_counts_and_pixels(tmp_path):
  need(FER_FULL)
  checks = json.loads((FER_DIR / "CHECKS.json").read_text())
  for split in fer2013.SPLITS:
    src = fer2013.fer2013(str(FER_FULL), split=split, cache_dir=str(tmp_path))
    counts = np.bincount(src.labels, minlength=7).tolist()
    assert counts == checks["counts"][split], split
  first = fer2013.fer2013(str(FER_FULL), split="Training")[0]["image"]
  prefix = [int(v) for v in checks["first_row_pixels_prefix"].split()[:-1]]
  assert first.ravel()[: len(prefix)].tolist() == prefix
  blank = fer2013.fer2013(str(FER_FULL), split="Training", drop_blank=True)
  assert blank.dropped == {"blank": 11}
  plus = fer2013.fer2013(str(FER_FULL), split="Training", ferplus="majority")
  assert plus.class_names == labels.FERPLUS and len(plus) < 28709
