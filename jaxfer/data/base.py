"""The random-access source interface every dataset implements.

A source is a Grain random-access data source: ``len(source)`` and
``source[i]`` returning a dict with

* ``"image"``: ``np.uint8[H, W, C]``, C = 1 (grey) or 3 (RGB); file sources
  may return any size, transforms resize;
* ``"label"``: ``np.int32`` scalar in ``[0, len(class_names))`` (labeled
  sources only);
* ``"soft_label"``: ``np.float32[num_classes]`` (optional, e.g. FER+ votes).

and attributes ``name`` (for messages), ``class_names`` (a tuple, or ``None``
for unlabeled pools), ``labels`` (``np.int32[N]``, labeled sources only: read
without decoding images, for class-balanced sampling and splits) and
``skipped`` (a list of ``(where, why)`` for bad items the user chose to skip;
the training loop logs its length).
"""

import dataclasses

import numpy as np


class DataError(ValueError):
  """Bad input data. The message names the file and the row or field."""


@dataclasses.dataclass
class ArraySource:
  """A labeled source held in memory (FER2013 rows, a distilled set, ...)."""

  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int32 [N]
  class_names: tuple[str, ...]
  name: str = "arrays"
  soft_labels: np.ndarray | None = None  # float32 [N, num_classes]
  skipped: list = dataclasses.field(default_factory=list)

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise DataError(
        f"{self.name}: images must be uint8 [N, H, W, C], got "
        f"{self.images.dtype} {self.images.shape}"
      )
    if len(self.labels) != len(self.images):
      raise DataError(
        f"{self.name}: {len(self.images)} images but {len(self.labels)} labels"
      )
    check_labels(self.labels, len(self.class_names), self.name)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, i):
    out = {"image": self.images[i], "label": np.int32(self.labels[i])}
    if self.soft_labels is not None:
      out["soft_label"] = self.soft_labels[i]
    return out


@dataclasses.dataclass
class Subset:
  """The rows `indices` of a source, keeping its attributes."""

  parent: object
  indices: np.ndarray
  name: str = ""

  def __post_init__(self):
    self.indices = np.asarray(self.indices, np.int64)
    self.rows = row_ids(self.parent, self.indices)
    self.name = self.name or f"{self.parent.name}[subset]"
    self.class_names = self.parent.class_names
    parent_labels = getattr(self.parent, "labels", None)
    self.labels = (
      None if parent_labels is None else np.asarray(parent_labels)[self.indices]
    )
    self.skipped = getattr(self.parent, "skipped", [])

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self.parent[int(self.indices[i])]


@dataclasses.dataclass
class Unlabeled:
  """A labeled source seen as an unlabeled pool (labels dropped).

  With `keep_true_label` items carry the hidden label as "true_label" (the
  batch's ``unlabeled_true_label``), for measuring the precision of
  pseudo-labels; no method trains on it.
  """

  parent: object
  name: str = ""
  keep_true_label: bool = False

  def __post_init__(self):
    self.name = self.name or f"{self.parent.name}[unlabeled]"
    self.class_names = None
    self.labels = None
    self.skipped = getattr(self.parent, "skipped", [])

  def __len__(self) -> int:
    return len(self.parent)

  def __getitem__(self, i):
    item = self.parent[i]
    if self.keep_true_label:
      return {"image": item["image"], "true_label": np.int32(item["label"])}
    return {"image": item["image"]}


@dataclasses.dataclass
class CenterCropped:
  """A source whose images are cut to their central `fraction` (per side).

  For face-recognition pools whose crops are loose (LFW's 250x250 images
  hold the face in about their central half) when the labeled FER data is
  tightly cropped.
  """

  parent: object
  fraction: float

  def __post_init__(self):
    if not 0 < self.fraction <= 1:
      raise ValueError(
        f"center crop fraction must be in (0, 1], got {self.fraction}"
      )
    self.name = f"{self.parent.name}[center {self.fraction:g}]"
    self.class_names = self.parent.class_names
    self.labels = getattr(self.parent, "labels", None)
    self.skipped = getattr(self.parent, "skipped", [])

  def __len__(self) -> int:
    return len(self.parent)

  def __getitem__(self, i):
    item = dict(self.parent[i])
    img = item["image"]
    h, w = (max(1, round(d * self.fraction)) for d in img.shape[:2])
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    item["image"] = img[top : top + h, left : left + w]
    return item


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
  """Raises DataError naming the first row whose label is out of range."""
  labels = np.asarray(labels)
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    raise DataError(
      f"{where}: row {bad[0]} has label {labels[bad[0]]}, "
      f"outside [0, {num_classes}) ({bad.size} such rows)"
    )


def row_ids(src, positions=None) -> np.ndarray:
  """int64 ids of a source's rows (those at `positions`, default all): its
  `rows` (FER2013's CSV rows, kept through subsets and relabelling), else
  the positions themselves."""
  rows = getattr(src, "rows", None)
  if rows is None:
    return np.arange(len(src)) if positions is None else positions
  rows = np.asarray(rows, np.int64)
  return rows if positions is None else rows[positions]


class Relabeled:
  """A labeled source seen in another label order, mapped by class name.

  A model trained on one dataset can so be evaluated on another. Classes
  without a counterpart are an error unless `drop_unmapped`, which leaves
  their rows out and counts them in `dropped`.
  """

  def __init__(self, parent, class_names, *, drop_unmapped: bool = False):
    from jaxfer.data import labels as labels_lib  # pylint: disable=g-import-not-at-top

    mapping = labels_lib.label_map(
      parent.class_names, class_names, missing_ok=drop_unmapped
    )
    mapped = labels_lib.remap(parent.labels, mapping)
    self.positions = np.flatnonzero(mapped >= 0)
    self.rows = row_ids(parent, self.positions)
    self.parent, self.mapping = parent, mapping
    self.labels = mapped[self.positions]
    self.class_names = tuple(class_names)
    self.name = f"{parent.name}->{'/'.join(class_names)}"
    self.skipped = getattr(parent, "skipped", [])
    self.dropped = {"unmapped_classes": int(len(mapped) - len(self.positions))}

  def __len__(self) -> int:
    return len(self.positions)

  def __getitem__(self, i):
    item = dict(self.parent[int(self.positions[i])])
    item["label"] = np.int32(self.mapping[item["label"]])
    item.pop("soft_label", None)
    return item
