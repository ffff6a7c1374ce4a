"""File-based sources: image folders, CSV lists, RAF-DB, AffectNet.

Images are decoded lazily with Pillow in ``__getitem__`` and keep their
nature: grey modes give ``uint8[H, W, 1]``, colour modes ``uint8[H, W, 3]``
(palette, CMYK, YCbCr, ... become RGB and alpha is dropped; 16-bit grey is
scaled to 8 bits). EXIF orientation is not applied. Image files are found by
extension (see ``IMAGE_EXTENSIONS``, case-insensitive); hidden files and
folders (names starting with ".") are not data and are passed over.

Bad input (a malformed row, a missing file, an undecodable image) raises
`DataError` naming the file and the line or field. With ``on_bad="skip"`` the
constructor instead drops such rows and files, after opening and verifying
every image, and lists them in ``skipped`` as ``(where, why)``. Rows dropped
by a dataset's own protocol (AffectNet's non-basic classes) are not bad
input: they are counted in ``dropped``.
"""

import csv
import os

import numpy as np
from PIL import Image

from jaxfer.data import labels as labels_lib
from jaxfer.data.sources import DataError, check_labels

IMAGE_EXTENSIONS = frozenset(
    (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"))
_AFFECTNET_NOT_BASIC = {7: "contempt", 8: "none", 9: "uncertain",
                        10: "no_face"}
_IMAGES = "Manually_Annotated_Images"


def load_image(path: str, box=None) -> np.ndarray:
  """Decodes an image file to ``uint8[H, W, 1 or 3]``.

  `box` is an optional ``(x0, y0, x1, y1)`` crop, clamped to the image. A
  file that cannot be decoded, or a box outside the image, is a DataError
  naming `path`.
  """
  try:
    with Image.open(path) as im:
      if box is not None:
        im = im.crop(_clamp_box(box, im.size, path))
      return _to_array(im)
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: cannot decode image "
                    f"({type(e).__name__}: {e})") from e


def _clamp_box(box, size, path):
  width, height = size
  x0, y0, x1, y1 = (int(v) for v in box)
  clamped = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
  if clamped[2] <= clamped[0] or clamped[3] <= clamped[1]:
    raise DataError(f"{path}: face box (x0, y0, x1, y1) = {tuple(box)} lies "
                    f"outside the {width}x{height} image")
  return clamped


def _to_array(im: Image.Image) -> np.ndarray:
  """Pillow image -> uint8[H, W, C] with C = 1 (grey modes) or 3."""
  if im.mode.startswith("I;16") or im.mode == "I":
    grey = np.clip(np.asarray(im, np.int64), 0, 65535) >> 8
    return grey.astype(np.uint8)[..., None]
  if im.mode == "F":
    grey = np.clip(np.rint(np.asarray(im, np.float64)), 0, 255)
    return grey.astype(np.uint8)[..., None]
  if im.mode in ("1", "L", "LA", "La"):
    return np.asarray(im.convert("L"), np.uint8)[..., None]
  return np.asarray(im.convert("RGB"), np.uint8)


def verify_image(path: str) -> str | None:
  """Opens and verifies an image with Pillow; returns why it is bad, or None."""
  try:
    with Image.open(path) as im:
      im.verify()
  except Exception as e:  # pylint: disable=broad-except
    return f"{path}: cannot decode image ({type(e).__name__}: {e})"
  return None


def _raise_listing_error(error: OSError):
  raise DataError(f"cannot list {error.filename}: {error.strerror}")


def _find_images(root: str) -> list[str]:
  """Sorted relative paths of the images at any depth below `root`."""
  if not os.path.isdir(root):
    raise DataError(f"image folder not found: {root}")
  found = []
  for folder, subfolders, files in os.walk(
      root, onerror=_raise_listing_error, followlinks=True):
    subfolders[:] = [d for d in subfolders if not d.startswith(".")]
    rel = os.path.relpath(folder, root)
    found += [f if rel == "." else os.path.join(rel, f) for f in files
              if not f.startswith(".")
              and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
  return sorted(found)


def _missing_files(paths):
  """Yields the indices of `paths` that do not exist (one listing per dir)."""
  listings = {}
  for i, path in enumerate(paths):
    folder, base = os.path.split(path)
    if folder not in listings:
      try:
        listings[folder] = set(os.listdir(folder or "."))
      except OSError:
        listings[folder] = set()
    if base not in listings[folder]:
      yield i


class _BadInput:
  """Raises bad-input errors, or records them when the user chose "skip"."""

  def __init__(self, on_bad: str):
    if on_bad not in ("error", "skip"):
      raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    self.skip = on_bad == "skip"
    self.skipped = []

  def __call__(self, where: str, error: DataError):
    if not self.skip:
      raise error
    self.skipped.append((where, str(error)))


def _row_error(where: str, field: str, why: str) -> DataError:
  return DataError(f"{where}, field {field!r}: {why}")


def _parse_int(text, where, field, low, high) -> int:
  """Parses an integer in [low, high] or raises a row error."""
  try:
    value = int(text)
  except (TypeError, ValueError):
    raise _row_error(where, field,
                     f"{text!r} is not an integer in {low}..{high}") from None
  if not low <= value <= high:
    raise _row_error(where, field, f"{value} is outside {low}..{high}")
  return value


def _read_csv(path: str, required):
  """Yields ``(where, row)`` of a CSV whose header has the `required` columns.

  Raises a DataError for a missing file, header or column, and for a row
  with more fields than the header; a missing value is ``None`` in `row`.
  """
  if not os.path.isfile(path):
    raise DataError(f"CSV file not found: {path}")
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    try:
      header = [h.strip() for h in reader.fieldnames or ()]
      missing = [c for c in required if c not in header]
      if missing:
        raise DataError(f"{path}, line 1 (header): missing column(s) "
                        f"{missing}; header is {header}")
      reader.fieldnames = header
      for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row:
          raise DataError(f"{where}: {len(header) + len(row[None])} fields, "
                          f"the header has {len(header)}")
        yield where, row
    except (csv.Error, UnicodeDecodeError) as e:
      raise DataError(f"{path}, line {reader.line_num + 1}: not readable as "
                      f"UTF-8 CSV ({e})") from e


def _field(row, name: str, where: str) -> str:
  value = row.get(name)
  if value is None or not value.strip():
    raise _row_error(where, name, "missing value")
  return value.strip()


class _FileSource:
  """Shared storage and decoding: image paths, labels and crop boxes."""
  boxes = None

  def _finish(self, name, paths, labels, class_names, bad, *,
              wheres=None, listed=False, boxes=None):
    """Checks the files (see the module doc) and stores those kept.

    `labels` is None for an unlabeled pool, `wheres` names the row of each
    path for messages, `listed` says the paths come from a folder listing
    (so they exist), `boxes` are optional ``(x0, y0, x1, y1)`` crops.
    Returns the indices of the kept paths.
    """
    wheres = wheres or paths
    missing = [] if listed else list(_missing_files(paths))
    for i in missing:
      bad(wheres[i], _row_error(wheres[i], "path",
                                f"image file not found: {paths[i]}"))
    bad_rows = set(missing)
    for i, path in enumerate(paths if bad.skip else ()):
      why = None if i in bad_rows else verify_image(path)
      if why is not None:
        bad_rows.add(i)
        bad(wheres[i], DataError(why))
    keep = [i for i in range(len(paths)) if i not in bad_rows]
    if not keep:
      raise DataError(f"{name}: no images" + (
          f" ({len(paths)} skipped as bad)" if paths else ""))
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

  def _from_rows(self, name, rows, parse, class_names, bad, *, crop=False):
    """Parses ``(where, row)`` pairs with `parse`, then `_finish`es.

    `parse(where, row)` returns ``(path, label, box)``, or None for a row
    that the dataset's protocol leaves out, or raises DataError.
    """
    parsed, wheres = [], []
    for where, row in rows:
      try:
        item = parse(where, row)
      except DataError as e:
        bad(where, e)
        continue
      if item is not None:
        parsed.append(item)
        wheres.append(where)
    paths, labels, boxes = (list(c) for c in zip(*parsed)) if parsed else (
        [], [], [])
    self._finish(name, paths, labels, class_names, bad, wheres=wheres,
                 boxes=boxes if crop else None)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, i):
    i = int(i)
    box = None if self.boxes is None else self.boxes[i]
    item = {"image": load_image(self.paths[i], box)}
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
    bad = _BadInput(on_bad)
    by_class, loose = {}, []
    for rel in _find_images(path):
      head, sep, _ = rel.partition(os.sep)
      if sep:
        by_class.setdefault(head, []).append(rel)
      else:
        loose.append(rel)
    with os.scandir(path) as entries:
      folders = sorted(e.name for e in entries
                       if e.is_dir() and not e.name.startswith("."))
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
    self._finish(f"ImageFolder({path})", paths, labels, class_names, bad,
                 listed=True)


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
    raise DataError(f"{path}: class folders do not match class_names "
                    f"{class_names}: folders not in the list {extra}, "
                    f"listed classes without a folder {absent}")
  return class_names


class UnlabeledFolder(_FileSource):
  """All images below a folder, e.g. an identity-folder face pool.

  Attributes:
    identities: int32 per image, the index in `identity_names` of its
      top-level subfolder, or -1 for images directly in the root.
    identity_names: the top-level subfolders holding images, sorted.
  """

  def __init__(self, path: str, *, on_bad: str = "error"):
    bad = _BadInput(on_bad)
    rels = _find_images(path)
    keep = self._finish(f"UnlabeledFolder({path})",
                        [os.path.join(path, r) for r in rels], None, None,
                        bad, listed=True)
    tops = [rels[i].partition(os.sep) for i in keep]
    self.identity_names = tuple(sorted({h for h, sep, _ in tops if sep}))
    index = {name: i for i, name in enumerate(self.identity_names)}
    self.identities = np.array([index[h] if sep else -1 for h, sep, _ in tops],
                               np.int32)


class LabeledCSV(_FileSource):
  """Images listed in a CSV with ``path`` and ``label`` columns.

  A label is an integer index into `class_names` or a class name (exact).
  Relative paths resolve against `image_root` (default: the CSV's folder).
  """

  def __init__(self, path: str, *, class_names, image_root=None,
               on_bad: str = "error"):
    class_names = tuple(class_names)
    root = os.path.dirname(path) if image_root is None else image_root

    def parse(where, row):
      label = _class_index(_field(row, "label", where), class_names, where)
      return os.path.join(root, _field(row, "path", where)), label, None

    self._from_rows(f"LabeledCSV({path})", _read_csv(path, ("path", "label")),
                    parse, class_names, _BadInput(on_bad))


def _class_index(text: str, class_names, where: str) -> int:
  if text in class_names:
    return class_names.index(text)
  if text.lstrip("+-").isdigit():
    return _parse_int(text, where, "label", 0, len(class_names) - 1)
  raise _row_error(where, "label", f"{text!r} is neither an index in "
                   f"0..{len(class_names) - 1} nor one of {class_names}")


class RafDB(_FileSource):
  """RAF-DB basic emotions (labels 1..7 in the file are stored as 0..6)."""

  def __init__(self, path: str, *, split: str = "train", aligned: bool = True,
               on_bad: str = "error"):
    if split not in ("train", "test"):
      raise ValueError(f"RAF-DB split must be 'train' or 'test', got {split!r}")
    list_file = os.path.join(path, "EmoLabel", "list_patition_label.txt")
    folder = os.path.join(path, "Image", "aligned" if aligned else "original")

    def parse(where, line):
      parts = line.split()
      if len(parts) != 2:
        raise DataError(f"{where}: {len(parts)} fields, expected "
                        "'<file name> <label 1..7>'")
      name, label = parts
      if not name.startswith(("train_", "test_")):
        raise _row_error(where, "filename",
                         f"{name!r} starts with neither 'train_' nor 'test_'")
      label = _parse_int(label, where, "label", 1, 7) - 1
      if not name.startswith(split + "_"):
        return None
      if aligned:
        name = "{}_aligned{}".format(*os.path.splitext(name))
      return os.path.join(folder, name), label, None

    self._from_rows(f"rafdb-{split}" + ("-aligned" if aligned else ""),
                    _read_lines(list_file), parse, labels_lib.RAFDB,
                    _BadInput(on_bad))


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

  COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width",
             "face_height", "expression")

  def __init__(self, path: str, *, split: str = "train", num_classes: int = 7,
               image_root=None, crop: bool = True, on_bad: str = "error"):
    if split not in ("train", "val"):
      raise ValueError(f"AffectNet split must be 'train' or 'val', got "
                       f"{split!r}")
    if num_classes not in (7, 8):
      raise ValueError(f"num_classes must be 7 or 8, got {num_classes}")
    csv_path = os.path.join(
        path, "training.csv" if split == "train" else "validation.csv")
    root = image_root or path
    if image_root is None and os.path.isdir(os.path.join(path, _IMAGES)):
      root = os.path.join(path, _IMAGES)
    self.dropped = {_AFFECTNET_NOT_BASIC[e]: 0 for e in range(num_classes, 11)}

    def parse(where, row):
      label = _parse_int(_field(row, "expression", where), where,
                         "expression", 0, 10)
      box = _affectnet_box(row, where)
      rel = _field(row, "subDirectory_filePath", where)
      if label >= num_classes:
        self.dropped[_AFFECTNET_NOT_BASIC[label]] += 1
        return None
      return os.path.join(root, rel), label, box

    names = labels_lib.AFFECTNET7 if num_classes == 7 else labels_lib.AFFECTNET8
    self._from_rows(f"affectnet{num_classes}-{split}",
                    _read_csv(csv_path, self.COLUMNS), parse, names,
                    _BadInput(on_bad), crop=crop)


def _affectnet_box(row, where: str):
  """The face box as integer ``(x0, y0, x1, y1)``."""
  x, y, width, height = (
      _parse_int(_field(row, name, where), where, name, low, 10**6)
      for name, low in zip(AffectNet.COLUMNS[1:5], (0, 0, 1, 1)))
  return x, y, x + width, y + height
