"""Aff-Wild2 (ABAW EXPR) on a small tree in the challenge's exact layout,
built here from LFW faces: counts of what is dropped, clear errors, every
k-th frame, the unannotated pool, and `configs/dtm_affwild2.py:smoke` end
to end."""

import json
import pathlib
import shutil

import pytest

from conftest import LFW
from conftest import config
from conftest import need
from jaxfer.data import labels
from jaxfer.data.base import DataError
from jaxfer.data.sources import affwild2
from jaxfer.loop import train

HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


def _tree(root: pathlib.Path, videos: dict, missing=()):
  """videos: {(split, video): [label per frame]}; frames in `missing`
  ((video, frame)) get no image."""
  faces = sorted(need(LFW).glob("*/*.jpg"))
  k = 0
  for (split, video), frame_labels in videos.items():
    ann = root / affwild2.ANNOTATIONS / split
    ann.mkdir(parents=True, exist_ok=True)
    (ann / f"{video}.txt").write_text(
      HEADER + "\n" + "".join(f"{y}\n" for y in frame_labels)
    )
    frames = root / affwild2.FRAMES / video
    frames.mkdir(parents=True, exist_ok=True)
    for f in range(1, len(frame_labels) + 1):
      if (video, f) not in missing:
        shutil.copy(faces[k % len(faces)], frames / f"{f:05d}.jpg")
        k += 1
  return root


VIDEOS = {
  ("Train_Set", "v1"): [0, 1, -1, 2, 3, 4, -1, 5, 6, 7],
  ("Train_Set", "v2"): [4, 4, -1, -1, 3, 0, 1, 2],
  ("Validation_Set", "v3"): [0, 1, 2, 3, 4, 5, 6, 7, -1],
}


def test_frames_labels_and_what_is_dropped(tmp_path):
  root = _tree(tmp_path, VIDEOS, missing={("v1", 2), ("v2", 6)})
  src = affwild2.AffWild2(str(root), split="Train_Set")
  # 18 frames, 4 labeled -1, 2 annotated without an image.
  assert len(src) == 12
  assert src.dropped == {"not annotated (-1)": 4, "no face image": 2}
  assert src.class_names == labels.ABAW_EXPR
  assert src.labels.tolist() == [0, 2, 3, 4, 5, 6, 7, 4, 4, 3, 1, 2]
  assert src.paths[0].endswith("v1/00001.jpg")
  assert src[0]["image"].shape == (250, 250, 1)
  every = affwild2.AffWild2(str(root), split="Train_Set", every=3)
  # Frames 1, 4, 7, 10 of v1 and 1, 4, 7 of v2, less the -1 ones (v1 7, v2 4).
  assert every.labels.tolist() == [0, 2, 7, 4, 1]
  pool = affwild2.AffWild2(str(root), split="Train_Set", frames="unannotated")
  assert len(pool) == 4 and pool.labels is None and pool.class_names is None
  assert pool.dropped == {"annotated": 14}


def test_bad_header_and_label_name_the_file_and_line(tmp_path):
  root = _tree(tmp_path, {("Train_Set", "v1"): [0, 1, 2]})
  ann = root / affwild2.ANNOTATIONS / "Train_Set" / "v1.txt"
  ann.write_text("Neutral,Anger,Disgust,Fear,Happy,Sadness,Surprise,Other\n0\n")
  with pytest.raises(DataError, match=r"v1.txt, line 1 \(header\)"):
    affwild2.AffWild2(str(root), split="Train_Set")
  ann.write_text(HEADER + "\n0\n9\n1\n")
  with pytest.raises(
    DataError,
    match=r"v1.txt, line 3, field 'label': 9 is "
    r"outside -1..7",
  ):
    affwild2.AffWild2(str(root), split="Train_Set")
  skip = affwild2.AffWild2(str(root), split="Train_Set", on_bad="skip")
  assert skip.labels.tolist() == [0, 1]  # frames 1 and 3
  assert skip.paths[1].endswith("00003.jpg")
  assert len(skip.skipped) == 1 and "line 3" in skip.skipped[0][0]
  with pytest.raises(DataError, match="annotation folder not found"):
    affwild2.AffWild2(str(root), split="Test_Set")


@pytest.mark.slow
def test_dtm_affwild2_smoke_config_runs_and_selects_by_macro_f1(tmp_path):
  frames = lambda n, s: [(s + i) % 9 - 1 for i in range(n)]  # -1..7
  root = _tree(
    tmp_path / "aw2",
    {
      ("Train_Set", "a"): frames(60, 0),
      ("Train_Set", "b"): frames(60, 4),
      ("Validation_Set", "c"): frames(18, 2),
    },
  )
  c = config("dtm_affwild2", "smoke")
  c.data.path = str(root)
  assert c.data.unlabeled.path == str(root)  # the same root
  result = train.run(c, str(tmp_path / "wd"))
  assert 0 <= result["Validation_Set/model/macro_f1"] <= 1
  meta = json.loads((tmp_path / "wd" / "config.json").read_text())
  assert meta["checkpoint"]["best_metric"] == "macro_f1"
  assert (tmp_path / "wd" / "best").exists()
