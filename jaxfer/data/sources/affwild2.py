"""Aff-Wild2 for the ABAW expression (EXPR) task: video frames, 8 classes.

Layout (the challenge's own):

    <root>/annotations/EXPR_Classification_Challenge/<split>/<video>.txt
    <root>/cropped_aligned/<video>/<frame>.jpg      frame numbers from 1,
                                                   5 digits: 00001.jpg

`<split>` is `Train_Set` or `Validation_Set`. An annotation file's first
line names the 8 classes (Neutral, Anger, Disgust, Fear, Happiness,
Sadness, Surprise, Other); line k + 1 is the label of frame k, -1 when the
frame is not annotated. Class indices follow that header, which is the
`labels.ABAW_EXPR` table.

`frames="annotated"` (the labeled set) keeps frames with a label 0..7;
frames labeled -1 and annotated frames with no face image (the cropper
found no face) are left out and counted in `dropped`. `frames=
"unannotated"` gives the frames labeled -1 that have an image, as an
unlabeled pool. `every=k` keeps every k-th frame of each video (2.7M frames
in all). A label outside -1..7 or a header that is not the 8 names is a
`DataError` naming the file and line; with ``on_bad="skip"`` such files
(headers) and lines (labels) are skipped and listed in `skipped`.
"""

import os

from jaxfer.data import images
from jaxfer.data import labels as labels_lib
from jaxfer.data.base import DataError
from jaxfer.data.sources import files
from jaxfer.data.sources import rows

HEADER = (
  "neutral",
  "anger",
  "disgust",
  "fear",
  "happiness",
  "sadness",
  "surprise",
  "other",
)
ANNOTATIONS = os.path.join("annotations", "EXPR_Classification_Challenge")
FRAMES = "cropped_aligned"


def _check_header(line: str, path: str) -> None:
  names = tuple(n.strip().lower() for n in line.strip().split(","))
  if names != HEADER:
    raise DataError(
      f"{path}, line 1 (header): expected the 8 ABAW EXPR "
      f"classes {','.join(n.title() for n in HEADER)}, got "
      f"{line.strip()!r}"
    )


def read_annotation(path: str, bad=None):
  """Yields (line number, frame number, label) of one video's file.

  A bad label line raises a DataError naming the file and line, or, with
  `bad` (a `rows.BadInput` set to skip), is recorded and passed over.
  """
  with open(path, encoding="utf-8-sig") as f:
    _check_header(f.readline(), path)
    for k, line in enumerate(f, start=1):
      text = line.strip()
      if not text:
        continue
      where = f"{path}, line {k + 1}"
      try:
        label = rows.parse_int(text, where, "label", -1, len(HEADER) - 1)
      except DataError as e:
        if bad is None:
          raise
        bad(where, e)
        continue
      yield k + 1, k, label


class AffWild2(files._FileSource):  # pylint: disable=protected-access
  """One split of Aff-Wild2 EXPR: frames and their labels (or a pool)."""

  def __init__(
    self,
    root: str,
    *,
    split: str,
    frames: str = "annotated",
    every: int = 1,
    on_bad: str = "error",
  ):
    if frames not in ("annotated", "unannotated"):
      raise ValueError(
        f"affwild2 frames must be 'annotated' or 'unannotated', got {frames!r}"
      )
    if every < 1:
      raise ValueError(f"config.data.affwild2.every must be >= 1, got {every}")
    folder = os.path.join(root, ANNOTATIONS, split)
    if not os.path.isdir(folder):
      raise DataError(
        f"Aff-Wild2 annotation folder not found: {folder} "
        f"(expected <root>/{ANNOTATIONS}/<split>/)"
      )
    bad = rows.BadInput(on_bad)
    self.dropped = {"not annotated (-1)": 0, "no face image": 0}
    if frames == "unannotated":
      self.dropped = {"annotated": 0}
    paths, frame_labels, wheres = [], [], []
    videos = sorted(f for f in os.listdir(folder) if f.endswith(".txt"))
    if not videos:
      raise DataError(f"{folder}: no <video>.txt annotation files")
    for name in videos:
      video, path = name[:-4], os.path.join(folder, name)
      kept = self._read_video(path, video, root, frames, every, bad)
      for line, frame_path, label in kept:
        paths.append(frame_path)
        frame_labels.append(label)
        wheres.append(f"{path}, line {line}")
    missing = set(images.missing_files(paths))
    if frames == "annotated":
      self.dropped["no face image"] = len(missing)
    keep = [i for i in range(len(paths)) if i not in missing]
    paths = [paths[i] for i in keep]
    wheres = [wheres[i] for i in keep]
    frame_labels = [frame_labels[i] for i in keep]
    label = f"every {every}th frame" if every > 1 else "all frames"
    self._finish(
      f"affwild2[{split}, {frames}, {label}]",
      paths,
      frame_labels if frames == "annotated" else None,
      labels_lib.ABAW_EXPR if frames == "annotated" else None,
      bad,
      wheres=wheres,
      listed=True,
    )
    self.videos = len(videos)

  def _read_video(self, path, video, root, frames, every, bad):
    out = []
    try:
      for line, frame, label in read_annotation(path, bad):
        if (label == -1) != (frames == "unannotated"):
          key = "not annotated (-1)" if frames == "annotated" else "annotated"
          self.dropped[key] += 1
          continue
        if (frame - 1) % every:
          continue
        out.append(
          (line, os.path.join(root, FRAMES, video, f"{frame:05d}.jpg"), label)
        )
    except DataError as e:
      bad(path, e)
    return out
