"""A mined set on disk: faces selected from an unlabeled pool, with labels.

`save(directory, ...)` writes

* ``mined.npz``: ``images`` (uint8 [N, H, W, C], at the size the primitive
  model saw them) and ``labels`` (int32 [N]);
* ``manifest.csv``: one row per face, in the order of the arrays: ``row``,
  ``pool_index`` (the face's index in the pool), ``source_id`` (its file, or
  MS-Celeb ``MID/face id``), ``identity``, ``label``, ``class``,
  ``confidence``, ``similarity``, ``score`` and, where the pool's true
  labels were known, ``true_label``;
* ``mined.json``: class names, counts per class, the selection rule and
  free-form facts;
* ``contact_sheet.png``: the best faces of each class, a row per class.

`load(directory)` checks that the three agree and gives an `ArraySource`,
so any config can train on the mined set (``data.source="mined"``) or add
it to its labeled set (``data.mined.path``; `Concat`).
"""

import csv
import json
import pathlib

import numpy as np
from PIL import Image

from jaxfer.data.base import ArraySource
from jaxfer.data.base import DataError

_ARRAYS, _MANIFEST, _META = "mined.npz", "manifest.csv", "mined.json"
COLUMNS = (
  "row",
  "pool_index",
  "source_id",
  "identity",
  "label",
  "class",
  "confidence",
  "similarity",
  "score",
)


def save(
  directory,
  *,
  images,
  labels,
  class_names,
  manifest: dict,
  sheet_per_class: int = 16,
  **facts,
) -> pathlib.Path:
  """Writes a mined set (see the module doc); returns the directory.

  `manifest` maps the COLUMNS after "row" (and optionally "true_label") to
  sequences of length N, in the order of `images`.
  """
  d = pathlib.Path(directory)
  d.mkdir(parents=True, exist_ok=True)
  images = np.asarray(images, np.uint8)
  labels = np.asarray(labels, np.int32)
  if images.ndim != 4 or len(images) != len(labels):
    raise ValueError(
      f"mined images {images.shape} and labels {labels.shape} do not agree"
    )
  tmp = d / (_ARRAYS + ".tmp.npz")
  np.savez(tmp, images=images, labels=labels)
  tmp.replace(d / _ARRAYS)
  columns = list(COLUMNS) + (["true_label"] if "true_label" in manifest else [])
  with open(d / _MANIFEST, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(columns)
    for i in range(len(labels)):
      row = {"row": i, "label": int(labels[i]), "class": class_names[labels[i]]}
      for k in columns:
        if k not in row:
          v = manifest[k][i]
          row[k] = f"{v:.6f}" if isinstance(v, (float, np.floating)) else v
      w.writerow([row[k] for k in columns])
  counts = np.bincount(labels, minlength=len(class_names))
  meta = dict(
    class_names=list(class_names),
    size=int(len(labels)),
    counts={n: int(c) for n, c in zip(class_names, counts)},
    image_shape=list(images.shape[1:]),
    **facts,
  )
  (d / _META).write_text(json.dumps(meta, indent=2, default=str))
  contact_sheet(
    images,
    labels,
    np.asarray(manifest["score"], np.float64),
    len(class_names),
    d / "contact_sheet.png",
    per_class=sheet_per_class,
  )
  return d


def contact_sheet(
  images, labels, scores, num_classes: int, path, *, per_class: int = 16
) -> None:
  """A PNG with a row per class of its `per_class` best-scored faces."""
  h, w, c = images.shape[1:]
  sheet = np.full(
    (num_classes * (h + 2), per_class * (w + 2), c), 255, np.uint8
  )
  for k in range(num_classes):
    rows = np.flatnonzero(labels == k)
    rows = rows[np.argsort(-scores[rows], kind="stable")][:per_class]
    for j, r in enumerate(rows):
      y, x = k * (h + 2) + 1, j * (w + 2) + 1
      sheet[y : y + h, x : x + w] = images[r]
  Image.fromarray(sheet[..., 0] if c == 1 else sheet).save(path)


def read_manifest(directory) -> list[dict]:
  path = pathlib.Path(directory) / _MANIFEST
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def load(directory) -> ArraySource:
  """The mined set as a labeled source; the manifest must match it."""
  d = pathlib.Path(directory)
  for name in (_ARRAYS, _MANIFEST, _META):
    if not (d / name).exists():
      raise DataError(
        f"{d}: no {name}; is it a mined set written by jaxfer.select?"
      )
  meta = json.loads((d / _META).read_text())
  with np.load(d / _ARRAYS) as z:
    images, labels = z["images"], z["labels"]
  manifest = read_manifest(d)
  if len(manifest) != len(labels):
    raise DataError(
      f"{d / _MANIFEST}: {len(manifest)} rows but "
      f"{d / _ARRAYS} holds {len(labels)} faces"
    )
  for i, row in enumerate(manifest):
    if int(row["label"]) != labels[i]:
      raise DataError(
        f"{d / _MANIFEST}, line {i + 2}: label {row['label']} "
        f"but {_ARRAYS} has {labels[i]} for row {i}"
      )
  return ArraySource(
    images, labels, tuple(meta["class_names"]), name=f"mined({d})"
  )


class Concat:
  """Two labeled sources of the same classes, one after the other."""

  def __init__(self, first, second):
    if tuple(first.class_names) != tuple(second.class_names):
      raise DataError(
        f"{second.name} has classes "
        f"{tuple(second.class_names)}, {first.name} has "
        f"{tuple(first.class_names)}"
      )
    self.first, self.second = first, second
    self.class_names = first.class_names
    self.labels = np.concatenate(
      [np.asarray(first.labels), np.asarray(second.labels)]
    )
    self.name = f"{first.name}+{second.name}"
    self.skipped = getattr(first, "skipped", [])

  def __len__(self) -> int:
    return len(self.first) + len(self.second)

  def __getitem__(self, i):
    i, n = int(i), len(self.first)
    item = dict(self.first[i] if i < n else self.second[i - n])
    item.pop("soft_label", None)
    return item
