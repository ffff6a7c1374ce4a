"""FER2013 in the original Kaggle CSV format, with optional FER+ labels.

The file is ``emotion,pixels,Usage`` with 2,304 space-separated grey levels
per row (48x48, row-major) and Usage in Training / PublicTest / PrivateTest.
Plain, ``.gz`` and ``.bz2`` files are read. Parsing the 301 MB file takes
about 20 s (mostly bz2), so the parsed arrays are cached as ``.npz`` under
``cache_dir`` keyed by the file's path, size and modification time.

FER+ (``fer2013new.csv``, same row order) replaces the labels with 10
annotators' votes: ``ferplus="majority"`` takes the most voted of the 8
emotions, ``ferplus="soft"`` the vote distribution over them. Rows whose
votes are mostly "unknown" or "not a face" are not emotions; FER+'s protocol
drops them, and so does this loader, counting them in ``dropped``.
"""

import bz2
import csv
import functools
import gzip
import hashlib
import os
import pathlib
import warnings
import zlib

import numpy as np

from jaxfer.data import labels as labels_lib
from jaxfer.data.base import ArraySource
from jaxfer.data.base import DataError

SPLITS = ("Training", "PublicTest", "PrivateTest")
NUM_PIXELS = 48 * 48


def _open_text(path: str):
  if path.endswith(".bz2"):
    return bz2.open(path, "rt", newline="")
  if path.endswith(".gz"):
    return gzip.open(path, "rt", newline="")
  return open(path, newline="")


def _bad_pixels(path: str, row: int, text: str) -> DataError:
  """Explains why a pixel string is not 2,304 integers in [0, 255]."""
  tokens = text.split()
  where = f"{path}, data row {row} (line {row + 2}), field 'pixels'"
  for j, tok in enumerate(tokens):
    if not tok.lstrip("-").isdigit():
      return DataError(f"{where}: token {j} is {tok!r}, not an integer")
    if not 0 <= int(tok) <= 255:
      return DataError(f"{where}: token {j} is {tok}, outside [0, 255]")
  return DataError(f"{where}: {len(tokens)} values, expected {NUM_PIXELS}")


def parse_csv(path: str, *, on_bad: str = "error"):
  """Parses a FER2013 CSV into arrays.

  Args:
    path: the CSV (plain, .gz or .bz2).
    on_bad: "error" raises DataError naming the file and row of the first bad
      row; "skip" drops bad rows and reports them.

  Returns:
    (images uint8[N, 48, 48, 1], labels int32[N], usage int8[N] indexing
    SPLITS, rows int64[N] the data-row number of each kept row, skipped
    list of (where, why)).
  """
  if on_bad not in ("error", "skip"):
    raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
  if not os.path.exists(path):
    raise DataError(f"FER2013 file not found: {path}")
  images, labels, usage, rows, skipped = [], [], [], [], []
  row = -1
  try:
    with _open_text(path) as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if header is None or [h.strip() for h in header] != [
        "emotion",
        "pixels",
        "Usage",
      ]:
        raise DataError(
          f"{path}: header is {header}, expected "
          "['emotion', 'pixels', 'Usage']"
          + (" (the file is empty)" if header is None else "")
        )
      for row, fields in enumerate(reader):
        try:
          images.append(_parse_row(path, row, fields))
          labels.append(int(fields[0]))
          usage.append(SPLITS.index(fields[2].strip()))
          rows.append(row)
        except DataError as e:
          if on_bad == "error":
            raise
          skipped.append((f"{path}:{row + 2}", str(e)))
  except (EOFError, OSError, zlib.error, UnicodeDecodeError, csv.Error) as e:
    # A truncated or corrupt file: never a silently shorter dataset, even
    # with on_bad="skip" (what follows the damage cannot be read).
    after = (
      f"after data row {row} (line {row + 2})"
      if row >= 0
      else "before its first data row"
    )
    raise DataError(
      f"{path}: cannot be read {after}: {type(e).__name__}: "
      f"{e}; the file is truncated or corrupt"
    ) from e
  if not images:
    raise DataError(f"{path}: no rows")
  return (
    np.stack(images)[..., None],
    np.array(labels, np.int32),
    np.array(usage, np.int8),
    np.array(rows, np.int64),
    skipped,
  )


def _parse_row(path, row, fields):
  where = f"{path}, data row {row} (line {row + 2})"
  if len(fields) != 3:
    raise DataError(f"{where}: {len(fields)} fields, expected 3")
  emotion, pixels, usage = fields
  if not emotion.strip().isdigit() or not 0 <= int(emotion) < 7:
    raise DataError(
      f"{where}, field 'emotion': {emotion!r} is not a label in 0..6"
    )
  if usage.strip() not in SPLITS:
    raise DataError(f"{where}, field 'Usage': {usage!r} is not one of {SPLITS}")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      values = np.fromstring(pixels, dtype=np.int64, sep=" ")
  except ValueError:
    raise _bad_pixels(path, row, pixels) from None
  if (
    values.size != NUM_PIXELS
    or values.min() < 0
    or values.max() > 255
    or len(pixels.split()) != NUM_PIXELS
  ):
    raise _bad_pixels(path, row, pixels)
  return values.astype(np.uint8).reshape(48, 48)


def _cache_file(path: str, cache_dir: str) -> pathlib.Path:
  st = os.stat(path)
  key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  return pathlib.Path(cache_dir).expanduser() / f"fer2013-{digest}.npz"


@functools.lru_cache(maxsize=4)
def _parsed(path: str, on_bad: str, stamp: tuple):
  """`parse_csv`, memoised in the process (`stamp`: the file's size and
  mtime, so an edited file is parsed again)."""
  del stamp
  return parse_csv(path, on_bad=on_bad)


def load_arrays(path: str, on_bad: str = "error", cache_dir: str | None = None):
  """`parse_csv`, memoised in the process (whatever `cache_dir`) and cached
  on disk if asked."""
  cache = _cache_file(path, cache_dir) if cache_dir else None
  if cache is not None and cache.exists() and on_bad == "error":
    with np.load(cache) as z:
      return z["images"], z["labels"], z["usage"], z["rows"], []
  st = os.stat(path) if os.path.exists(path) else None
  out = _parsed(path, on_bad, (st.st_size, st.st_mtime_ns) if st else None)
  if cache is not None and on_bad == "error":
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")  # racers
    np.savez(tmp, images=out[0], labels=out[1], usage=out[2], rows=out[3])
    os.replace(tmp, cache)
  return out


load_arrays.cache_clear = _parsed.cache_clear  # forget the in-process memo


def ferplus_votes(path: str, num_rows: int) -> np.ndarray:
  """Reads fer2013new.csv into int32[num_rows, 10] votes (FERPLUS order)."""
  if not os.path.exists(path):
    raise DataError(f"FER+ file not found: {path}")
  with open(path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if not header or header[0] != "Usage" or len(header) != 12:
      raise DataError(
        f"{path}: header {header} is not FER+'s "
        "'Usage,Image name,<10 vote columns>'"
      )
    votes = []
    for row, fields in enumerate(reader):
      try:
        votes.append([int(v) for v in fields[2:12]])
      except ValueError:
        raise DataError(
          f"{path}, data row {row} (line {row + 2}): votes "
          f"{fields[2:]} are not integers"
        ) from None
      if len(votes[-1]) != 10:
        raise DataError(
          f"{path}, data row {row} (line {row + 2}): "
          f"{len(votes[-1])} vote columns, expected 10"
        )
  if len(votes) != num_rows:
    raise DataError(
      f"{path}: {len(votes)} rows but the FER2013 file has "
      f"{num_rows}; FER+ must have the same rows in order"
    )
  return np.array(votes, np.int32)


def fer2013(
  path: str,
  *,
  split: str | tuple[str, ...] = "Training",
  ferplus: str | None = None,
  ferplus_path: str | None = None,
  on_bad: str = "error",
  drop_blank: bool = False,
  cache_dir: str | None = None,
) -> ArraySource:
  """The rows of one or more Usage splits of FER2013 as an ArraySource.

  Args:
    path: the Kaggle CSV (plain, .gz or .bz2).
    split: a Usage value or a tuple of them.
    ferplus: None (the original 7 labels), "majority" or "soft" (FER+'s
      8 classes), or "soft_train": the Training rows' FER+ votes as soft
      targets over FER2013's 7 classes (contempt's votes left out, the rest
      renormalised; rows with no such vote dropped and counted), their
      original labels kept, and every other split as it is (evaluated
      against the original labels).
    ferplus_path: fer2013new.csv; default ``<dir of path>/ferplus/``.
    on_bad: "error" or "skip" (bad rows dropped and listed in `skipped`).
    drop_blank: drop constant images (12 in FER2013); counted in `dropped`.
    cache_dir: where to cache the parsed arrays (None: no disk cache).
  """
  splits = (split,) if isinstance(split, str) else tuple(split)
  for s in splits:
    if s not in SPLITS:
      raise ValueError(f"FER2013 split {s!r} is not one of {SPLITS}")
  images, labels, usage, rows, skipped = load_arrays(path, on_bad, cache_dir)
  keep = np.isin(usage, [SPLITS.index(s) for s in splits])
  dropped = {}
  if drop_blank:
    blank = keep & (images.reshape(len(images), -1).std(axis=1) == 0)
    dropped["blank"] = int(blank.sum())
    keep &= ~blank
  names, soft = labels_lib.FER2013, None
  if ferplus == "soft_train":
    if splits != ("Training",):
      ferplus = None  # evaluation splits keep their rows and labels
    else:
      votes = ferplus_votes(
        ferplus_path
        or os.path.join(os.path.dirname(path), "ferplus", "fer2013new.csv"),
        len(labels),
      )
      order = [labels_lib.FERPLUS.index(c) for c in labels_lib.FER2013]
      seven = votes[:, order].astype(np.float32)
      total = seven.sum(axis=1, keepdims=True)
      dropped["ferplus_no_vote_for_the_7_classes"] = int(
        (keep & (total[:, 0] == 0)).sum()
      )
      keep &= total[:, 0] > 0
      soft = np.divide(seven, total, out=np.zeros_like(seven), where=total > 0)
      ferplus = None
  if ferplus is not None:
    if on_bad != "error":
      raise ValueError("ferplus labels need every FER2013 row: on_bad='error'")
    ferplus_path = ferplus_path or os.path.join(
      os.path.dirname(path), "ferplus", "fer2013new.csv"
    )
    votes = ferplus_votes(ferplus_path, len(labels))
    emotions = votes[:, :8]
    not_emotion = votes[:, 8:].max(axis=1) >= emotions.max(axis=1)
    dropped["ferplus_unknown_or_not_face"] = int((keep & not_emotion).sum())
    keep &= ~not_emotion
    names, labels = labels_lib.FERPLUS, emotions.argmax(axis=1).astype(np.int32)
    if ferplus == "soft":
      total = emotions.sum(axis=1, keepdims=True)
      soft = np.divide(
        emotions, total, out=np.zeros(emotions.shape), where=total > 0
      ).astype(np.float32)
    elif ferplus != "majority":
      raise ValueError(
        f"ferplus must be None, 'majority' or 'soft', got {ferplus!r}"
      )
  idx = np.flatnonzero(keep)
  if idx.size == 0:
    raise DataError(f"{path}: no rows in split {splits}")
  src = ArraySource(
    images[idx],
    labels[idx],
    names,
    name=f"fer2013[{'+'.join(splits)}]",
    soft_labels=None if soft is None else soft[idx],
    skipped=list(skipped),
  )
  src.rows, src.dropped = rows[idx], dropped
  return src
