"""Configs through the data builder and the loop, on real data."""

import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import LFW
from conftest import need
from jaxfer import configs
from jaxfer.core import report
from jaxfer.data import build
from jaxfer.loop import train


@pytest.mark.slow
def test_fer2013_smoke_config_end_to_end(tmp_path):
  need(FER_SAMPLE)
  config = configs.load("supervised_fer2013:smoke")
  config.data.path = str(FER_SAMPLE)
  result = train.run(config, str(tmp_path))
  for split in ("PublicTest", "PrivateTest"):
    assert 0 <= result[f"{split}/model/accuracy"] <= 1
  rows = report.read_rows(tmp_path)
  assert {r["split"] for r in rows} >= {"train", "PublicTest", "PrivateTest"}
  assert (tmp_path / "best").exists()


def test_fer2013_ten_percent_variant_uses_a_balanced_subset():
  need(FER_SAMPLE)
  config = configs.load("supervised_fer2013:smoke,10pct")
  config.data.path = str(FER_SAMPLE)
  data = build.build(config)
  assert "[50% labeled]: 35 examples (angry 5, disgust 5" in data.log[0]
  batch = next(iter(data.train))
  assert batch["image"].shape == (8, 48, 48, 1)


def test_lfw_as_unlabeled_pool_gives_weak_strong_pairs():
  need(FER_SAMPLE)
  need(LFW)
  config = configs.load("supervised_fer2013:smoke")
  config.data.path = str(FER_SAMPLE)
  config.mu = 3
  config.data.unlabeled.source = "unlabeled_folder"
  config.data.unlabeled.path = str(LFW)
  data = build.build(config)
  assert "13233 examples" in data.log[1]
  batch = next(iter(data.train))
  assert batch["unlabeled_weak"].shape == (24, 48, 48, 1)
  assert batch["unlabeled_strong"].shape == (24, 48, 48, 1)
  assert batch["unlabeled_weak"].dtype == np.float32
  assert not np.allclose(batch["unlabeled_weak"], batch["unlabeled_strong"])


def test_missing_path_names_the_field(tmp_path, monkeypatch):
  config = configs.load("supervised_fer2013")
  config.data.path = ""
  with pytest.raises(ValueError, match="config.data.path"):
    build.build(config)
  # The default path under an empty data root: the error names the file,
  # the field, the root and where FER2013 comes from.
  monkeypatch.setenv("JAXFER_DATA", str(tmp_path))
  config = configs.load("supervised_fer2013")
  with pytest.raises(ValueError, match="fer2013.csv.*path=.*Kaggle"):
    build.build(config)
