"""File-based sources: image folders, CSV lists, RAF-DB, AffectNet.

Images are decoded lazily in ``__getitem__`` (`jaxfer.data.images`: grey
stays ``uint8[H, W, 1]``, colour is ``uint8[H, W, 3]``); folders are listed
by image extension, hidden files and folders passed over.

Bad input (a malformed row, a missing file, an undecodable image) raises
`DataError` naming the file and the line or field. With ``on_bad="skip"`` the
constructor instead drops such rows and files, after opening and verifying
every image, and lists them in ``skipped`` as ``(where, why)``. Rows dropped
by a dataset's own protocol (AffectNet's non-basic classes) are not bad
input: they are counted in ``dropped``.
"""

import os

import numpy as np

from jaxfer.data import images
from jaxfer.data import labels as labels_lib
from jaxfer.data.base import DataError
from jaxfer.data.base import check_labels
from jaxfer.data.sources import rows

_AFFECTNET_NOT_BASIC = {7: "contempt", 8: "none", 9: "uncertain", 10: "no_face"}
_IMAGES = "Manually_Annotated_Images"


class _FileSource:
  """Shared storage and decoding: image paths, labels and crop boxes."""

  boxes = None

  def _finish(
    self,
    name,
    paths,
    labels,
    class_names,
    bad,
    *,
    wheres=None,
    listed=False,
    boxes=None,
  ):
    """Checks the files (see the module doc) and stores those kept.

    `labels` is None for an unlabeled pool, `wheres` names the row of each
    path for messages, `listed` says the paths come from a folder listing
    (so they exist), `boxes` are optional ``(x0, y0, x1, y1)`` crops.
    Returns the indices of the kept paths.
    """
    wheres = wheres or paths
    missing = [] if listed else list(images.missing_files(paths))
    for i in missing:
      bad(
        wheres[i],
        rows.row_error(wheres[i], "path", f"image file not found: {paths[i]}"),
      )
    bad_rows = set(missing)
    for i, path in enumerate(paths if bad.skip else ()):
      why = None if i in bad_rows else images.verify_image(path)
      if why is not None:
        bad_rows.add(i)
        bad(wheres[i], DataError(why))
    keep = [i for i in range(len(paths)) if i not in bad_rows]
    if not keep:
      raise DataError(
        f"{name}: no images"
        + (f" ({len(paths)} skipped as bad)" if paths else "")
      )
    self.name, self.class_names = name, class_names
    self.paths = [paths[i] for i in keep]
    self.labels = self.boxes = None
    if labels is not None:
      self.labels = np.array([labels[i] for i in keep], np.int32)
      check_labels(self.labels, len(class_names), name)
    if boxes is not None:
      self.boxes = np.array([boxes[i] for i in keep], np.int64).reshape(-1, 4)
    self.skipped = bad.skipped
    return keep

  def _from_rows(self, name, items, parse, class_names, bad, *, crop=False):
    """Parses ``(where, row)`` pairs with `parse`, then `_finish`es.

    `parse(where, row)` returns ``(path, label, box)``, or None for a row
    that the dataset's protocol leaves out, or raises DataError.
    """
    parsed, wheres = [], []
    for where, row in items:
      try:
        item = parse(where, row)
      except DataError as e:
        bad(where, e)
        continue
      if item is not None:
        parsed.append(item)
        wheres.append(where)
    paths, labels, boxes = (
      (list(c) for c in zip(*parsed)) if parsed else ([], [], [])
    )
    self._finish(
      name,
      paths,
      labels,
      class_names,
      bad,
      wheres=wheres,
      boxes=boxes if crop else None,
    )

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, i):
    i = int(i)
    box = None if self.boxes is None else self.boxes[i]
    item = {"image": images.load_image(self.paths[i], box)}
    if self.labels is not None:
      item["label"] = np.int32(self.labels[i])
    return item


class ImageFolder(_FileSource):
  """Labeled images in ``path/<class>/...`` (any depth below the class).

  Class names are the sorted class folders, or `class_names` (then the
  folders must be exactly those). An image directly in `path` belongs to no
  class and is bad input.
  """

  def __init__(self, path: str, *, class_names=None, on_bad: str = "error"):
    bad = rows.BadInput(on_bad)
    by_class, loose = {}, []
    for rel in images.find_images(path):
      head, sep, _ = rel.partition(os.sep)
      if sep:
        by_class.setdefault(head, []).append(rel)
      else:
        loose.append(rel)
    with os.scandir(path) as entries:
      folders = sorted(
        e.name for e in entries if e.is_dir() and not e.name.startswith(".")
      )
    class_names = _check_classes(path, folders, class_names)
    for rel in loose:
      where = os.path.join(path, rel)
      bad(where, DataError(f"{where}: image outside any class folder"))
    empty = [c for c in class_names if not by_class.get(c)]
    if empty:
      raise DataError(f"{path}: class folder(s) {empty} have no images")
    paths, labels = [], []
    for label, name in enumerate(class_names):
      paths += [os.path.join(path, rel) for rel in by_class[name]]
      labels += [label] * len(by_class[name])
    self._finish(
      f"ImageFolder({path})", paths, labels, class_names, bad, listed=True
    )


def _check_classes(path, folders, class_names):
  """The class names: the folders, or the given names if they match them."""
  if class_names is None:
    return tuple(folders)
  class_names = tuple(class_names)
  if len(set(class_names)) != len(class_names):
    raise ValueError(f"class_names {class_names} has duplicates")
  extra = [f for f in folders if f not in class_names]
  absent = [c for c in class_names if c not in folders]
  if extra or absent:
    raise DataError(
      f"{path}: class folders do not match class_names "
      f"{class_names}: folders not in the list {extra}, "
      f"listed classes without a folder {absent}"
    )
  return class_names


class UnlabeledFolder(_FileSource):
  """All images below a folder, e.g. an identity-folder face pool.

  Attributes:
    identities: int32 per image, the index in `identity_names` of its
      top-level subfolder, or -1 for images directly in the root.
    identity_names: the top-level subfolders holding images, sorted.
  """

  def __init__(self, path: str, *, on_bad: str = "error"):
    bad = rows.BadInput(on_bad)
    rels = images.find_images(path)
    keep = self._finish(
      f"UnlabeledFolder({path})",
      [os.path.join(path, r) for r in rels],
      None,
      None,
      bad,
      listed=True,
    )
    tops = [rels[i].partition(os.sep) for i in keep]
    self.identity_names = tuple(sorted({h for h, sep, _ in tops if sep}))
    index = {name: i for i, name in enumerate(self.identity_names)}
    self.identities = np.array(
      [index[h] if sep else -1 for h, sep, _ in tops], np.int32
    )


class LabeledCSV(_FileSource):
  """Images listed in a CSV with ``path`` and ``label`` columns.

  A label is an integer index into `class_names` or a class name (exact).
  Relative paths resolve against `image_root` (default: the CSV's folder).
  """

  def __init__(
    self, path: str, *, class_names, image_root=None, on_bad: str = "error"
  ):
    class_names = tuple(class_names)
    root = os.path.dirname(path) if image_root is None else image_root

    def parse(where, row):
      label = _class_index(rows.field(row, "label", where), class_names, where)
      return os.path.join(root, rows.field(row, "path", where)), label, None

    self._from_rows(
      f"LabeledCSV({path})",
      rows.read_csv(path, ("path", "label")),
      parse,
      class_names,
      rows.BadInput(on_bad),
    )


def _class_index(text: str, class_names, where: str) -> int:
  if text in class_names:
    return class_names.index(text)
  if text.lstrip("+-").isdigit():
    return rows.parse_int(text, where, "label", 0, len(class_names) - 1)
  raise rows.row_error(
    where,
    "label",
    f"{text!r} is neither an index in "
    f"0..{len(class_names) - 1} nor one of {class_names}",
  )


class RafDB(_FileSource):
  """RAF-DB basic emotions (labels 1..7 in the file are stored as 0..6)."""

  def __init__(
    self,
    path: str,
    *,
    split: str = "train",
    aligned: bool = True,
    on_bad: str = "error",
  ):
    if split not in ("train", "test"):
      raise ValueError(f"RAF-DB split must be 'train' or 'test', got {split!r}")
    list_file = os.path.join(path, "EmoLabel", "list_patition_label.txt")
    folder = os.path.join(path, "Image", "aligned" if aligned else "original")

    def parse(where, line):
      parts = line.split()
      if len(parts) != 2:
        raise DataError(
          f"{where}: {len(parts)} fields, expected '<file name> <label 1..7>'"
        )
      name, label = parts
      if not name.startswith(("train_", "test_")):
        raise rows.row_error(
          where,
          "filename",
          f"{name!r} starts with neither 'train_' nor 'test_'",
        )
      label = rows.parse_int(label, where, "label", 1, 7) - 1
      if not name.startswith(split + "_"):
        return None
      if aligned:
        name = "{}_aligned{}".format(*os.path.splitext(name))
      return os.path.join(folder, name), label, None

    self._from_rows(
      f"rafdb-{split}" + ("-aligned" if aligned else ""),
      _read_lines(list_file),
      parse,
      labels_lib.RAFDB,
      rows.BadInput(on_bad),
    )


def _read_lines(path: str):
  """Yields ``(where, line)`` for the non-blank lines of a text file."""
  if not os.path.isfile(path):
    raise DataError(f"label file not found: {path}")
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if line.strip():
        yield f"{path}, line {line_no}", line


class AffectNet(_FileSource):
  """AffectNet's manually annotated set, 7 or 8 basic classes.

  Rows of the other classes (contempt when 7 classes; none, uncertain and
  no-face) are left out by the protocol and counted in `dropped`. Images are
  under `image_root`, by default ``path/Manually_Annotated_Images`` if that
  folder exists, else `path`.
  """

  COLUMNS = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "expression",
  )

  def __init__(
    self,
    path: str,
    *,
    split: str = "train",
    num_classes: int = 7,
    image_root=None,
    crop: bool = True,
    on_bad: str = "error",
  ):
    if split not in ("train", "val"):
      raise ValueError(
        f"AffectNet split must be 'train' or 'val', got {split!r}"
      )
    if num_classes not in (7, 8):
      raise ValueError(f"num_classes must be 7 or 8, got {num_classes}")
    csv_path = os.path.join(
      path, "training.csv" if split == "train" else "validation.csv"
    )
    root = image_root or path
    if image_root is None and os.path.isdir(os.path.join(path, _IMAGES)):
      root = os.path.join(path, _IMAGES)
    self.dropped = {_AFFECTNET_NOT_BASIC[e]: 0 for e in range(num_classes, 11)}

    def parse(where, row):
      label = rows.parse_int(
        rows.field(row, "expression", where), where, "expression", 0, 10
      )
      box = _affectnet_box(row, where)
      rel = rows.field(row, "subDirectory_filePath", where)
      if label >= num_classes:
        self.dropped[_AFFECTNET_NOT_BASIC[label]] += 1
        return None
      return os.path.join(root, rel), label, box

    names = labels_lib.AFFECTNET7 if num_classes == 7 else labels_lib.AFFECTNET8
    self._from_rows(
      f"affectnet{num_classes}-{split}",
      rows.read_csv(csv_path, self.COLUMNS),
      parse,
      names,
      rows.BadInput(on_bad),
      crop=crop,
    )


def _affectnet_box(row, where: str):
  """The face box as integer ``(x0, y0, x1, y1)``."""
  x, y, width, height = (
    rows.parse_int(rows.field(row, name, where), where, name, low, 10**6)
    for name, low in zip(AffectNet.COLUMNS[1:5], (0, 0, 1, 1))
  )
  return x, y, x + width, y + height
