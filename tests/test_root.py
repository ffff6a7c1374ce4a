"""The data root (`jaxfer.data.root`): `$JAXFER_DATA` paths are read under
the folder the variable names, a compressed CSV stands for a plain one
there, other paths are used as written, and a missing dataset is an error
naming the path, the root and where the data comes from; the `:smoke`
variants need none of it (their faces ship in the package)."""

import bz2

import numpy as np
import pytest

from conftest import python
from jaxfer import configs
from jaxfer.core import presets
from jaxfer.data import build
from jaxfer.data import root
from jaxfer.data import smoke
from jaxfer.data.base import DataError


def test_paths_under_the_root(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXFER_DATA", str(tmp_path))
  assert root.root() == tmp_path
  assert root.resolve("$JAXFER_DATA/lfw") == f"{tmp_path}/lfw"
  assert root.resolve("$JAXFER_DATA") == str(tmp_path)
  assert root.resolve("/elsewhere/x.csv") == "/elsewhere/x.csv"
  assert root.resolve("$JAXFER_DATAX/y") == "$JAXFER_DATAX/y"  # not the root
  (tmp_path / "fer2013").mkdir()
  plain = "$JAXFER_DATA/fer2013/fer2013.csv"
  assert root.resolve(plain) == f"{tmp_path}/fer2013/fer2013.csv"
  (tmp_path / "fer2013" / "fer2013.csv.bz2").write_bytes(b"")
  assert root.resolve(plain).endswith("fer2013.csv.bz2")
  (tmp_path / "fer2013" / "fer2013.csv").write_text("")
  assert root.resolve(plain).endswith("fer2013.csv")  # as named, first


def test_the_default_root_when_unset(monkeypatch):
  monkeypatch.delenv("JAXFER_DATA", raising=False)
  assert str(root.root()).endswith("jaxfer_data")
  assert "~" not in str(root.root())


def test_a_missing_dataset_says_where_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXFER_DATA", str(tmp_path / "empty"))
  c = configs.load("supervised_fer2013")
  assert c.data.path == "$JAXFER_DATA/fer2013/fer2013.csv"
  with pytest.raises(DataError) as e:
    build.make_source(c.data, "Training")
  msg = str(e.value)
  assert f"{tmp_path / 'empty'}/fer2013/fer2013.csv" in msg
  assert "$JAXFER_DATA is" in msg and "Kaggle" in msg
  assert "Getting the data" in msg
  lfw = configs.load("dtm_fer2013:lfw").data.unlabeled
  with pytest.raises(DataError, match="Labeled Faces in the Wild"):
    build.make_source(lfw, lfw.split)


def test_the_shipped_smoke_faces_are_what_the_module_writes():
  assert presets.FER2013_SMOKE == str(smoke.PATH)
  assert bz2.decompress(smoke.PATH.read_bytes()).decode() == smoke.csv_text()
  c = configs.load("supervised_fer2013:smoke")
  assert c.data.path == str(smoke.PATH)
  for split in smoke.USAGES:
    src = build.make_source(c.data, split)
    assert len(src) == 70
    assert np.bincount(src.labels, minlength=7).tolist() == [10] * 7


@pytest.mark.slow
def test_smoke_runs_from_any_folder_with_no_data(tmp_path):
  """A FER2013 config's `:smoke` from a temporary folder, the data root
  empty: it trains and evaluates on the shipped faces."""
  p = python(
    "-m",
    "jaxfer.main",
    "--config",
    "supervised_fer2013:smoke",
    "--workdir",
    tmp_path / "wd",
    cwd=tmp_path,
    env={"JAXFER_DATA": str(tmp_path / "empty")},
  )
  assert p.returncode == 0, p.stderr[-3000:]
  assert "step 6 PrivateTest" in p.stdout + p.stderr
