"""Rows of list files with clear errors: the bad-input policy of the
file-based sources ("error" raises, "skip" records) and a CSV reader that
names the file and line of every problem."""

import csv
import os

from jaxfer.data.base import DataError


class BadInput:
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


def row_error(where: str, field: str, why: str) -> DataError:
  return DataError(f"{where}, field {field!r}: {why}")


def parse_int(text, where, field, low, high) -> int:
  """Parses an integer in [low, high] or raises a row error."""
  try:
    value = int(text)
  except (TypeError, ValueError):
    raise row_error(
      where, field, f"{text!r} is not an integer in {low}..{high}"
    ) from None
  if not low <= value <= high:
    raise row_error(where, field, f"{value} is outside {low}..{high}")
  return value


def read_csv(path: str, required):
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
        raise DataError(
          f"{path}, line 1 (header): missing column(s) "
          f"{missing}; header is {header}"
        )
      reader.fieldnames = header
      for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row:
          raise DataError(
            f"{where}: {len(header) + len(row[None])} fields, "
            f"the header has {len(header)}"
          )
        yield where, row
    except (csv.Error, UnicodeDecodeError) as e:
      raise DataError(
        f"{path}, line {reader.line_num + 1}: not readable as UTF-8 CSV ({e})"
      ) from e


def field(row, name: str, where: str) -> str:
  value = row.get(name)
  if value is None or not value.strip():
    raise row_error(where, name, "missing value")
  return value.strip()
