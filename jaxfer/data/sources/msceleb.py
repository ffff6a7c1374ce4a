"""MS-Celeb-1M in its TSV release: one face per line, read by byte offset.

A line holds 7 tab-separated fields: Freebase MID (the identity), image
search rank, image URL, page URL, face id, face rectangle, and the face crop
as a base64-encoded JPEG. The file is 100+ GB, so it is never read into
memory: a byte-offset index is built in one streaming pass and cached beside
the file (``<file>.index.npz``, keyed by the file's size and modification
time, written atomically; `index_path` moves it, e.g. for a read-only
file), and ``source[i]`` reads one line with ``os.pread`` (thread-safe, no
shared file position) and decodes its JPEG.

Bad input: a line without 7 fields is found while indexing, a face that
does not decode (bad base64 or JPEG) when it is read. Both are a
`DataError` naming the file and line. With ``on_bad="skip"`` short lines
are left out of the index and listed in `skipped`; undecodable faces cannot
be known without decoding the whole file, so ``source[i]`` still raises for
them and the selection pass (``select.on_bad="skip"``) counts and passes
over them.
"""

import base64
import binascii
import io
import json
import os
import pathlib

import numpy as np
from PIL import Image

from jaxfer.data import images
from jaxfer.data.base import DataError
from jaxfer.data.sources import rows

FIELDS = (
  "mid",
  "rank",
  "image_url",
  "page_url",
  "face_id",
  "rectangle",
  "face_data",
)
_VERSION = 1


def _index_file(path: str, index_path: str | None) -> pathlib.Path:
  return pathlib.Path(index_path or path + ".index.npz")


def _stamp(path: str) -> dict:
  st = os.stat(path)
  return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "version": _VERSION}


def build_index(path: str, bad: rows.BadInput, *, block: int = 1 << 24):
  """(starts, ends, line numbers, MIDs) of a TSV file's faces.

  Face i is the bytes starts[i]:ends[i] of the file (its line without the
  line end). Streams the file in `block`-byte reads; blank lines are passed
  over, a line without 7 fields goes to `bad`.
  """
  starts, ends, line_nos, mids = [], [], [], []
  data_start, line_no, tail = 0, 0, b""  # tail: a line not yet ended
  with open(path, "rb") as f:
    while True:
      chunk = f.read(block)
      lines = (tail + chunk).split(b"\n")
      tail = lines.pop() if chunk else b""
      off = data_start
      for line in lines:
        line_no += 1
        text = line[:-1] if line.endswith(b"\r") else line
        if text.strip():
          fields = text.count(b"\t") + 1
          if fields == len(FIELDS):
            starts.append(off)
            ends.append(off + len(text))
            line_nos.append(line_no)
            mids.append(text[: text.index(b"\t")].decode("utf-8", "replace"))
          else:
            bad(
              f"{path}, line {line_no}",
              DataError(
                f"{path}, line {line_no}: {fields} tab-separated fields, "
                f"expected {len(FIELDS)} ({', '.join(FIELDS)})"
              ),
            )
        off += len(line) + 1
      data_start = off
      if not chunk:
        break
  return (
    np.array(starts, np.int64),
    np.array(ends, np.int64),
    np.array(line_nos, np.int64),
    mids,
  )


class MsCelebTSV:
  """The faces of an MS-Celeb-1M TSV file, as an unlabeled pool.

  Attributes:
    identities: int32 per face, index of its MID in `identity_names`.
    identity_names: the sorted distinct MIDs.
    line_numbers: int64 per face, its line in the file (from 1).
    skipped: (where, why) of the lines left out (``on_bad="skip"``).
  """

  class_names = None
  labels = None

  def __init__(
    self, path: str, *, on_bad: str = "error", index_path: str | None = None
  ):
    if not os.path.isfile(path):
      raise DataError(f"MS-Celeb TSV file not found: {path}")
    self.path, self.name = path, f"MsCelebTSV({path})"
    self.on_bad = on_bad
    bad = rows.BadInput(on_bad)
    cache = _index_file(path, index_path)
    loaded = _load_index(cache, path, on_bad)
    if loaded is None:
      starts, ends, line_nos, mids = build_index(path, bad)
      if not len(starts):
        raise DataError(
          f"{path}: no faces"
          + (
            f" ({len(bad.skipped)} lines skipped as bad)" if bad.skipped else ""
          )
        )
      names, ids = np.unique(
        np.array(mids, dtype=object).astype(str), return_inverse=True
      )
      loaded = dict(
        starts=starts,
        ends=ends,
        line_numbers=line_nos,
        identities=ids.astype(np.int32),
        identity_names=names,
        skipped=np.array([json.dumps(s) for s in bad.skipped], dtype=str),
      )
      _save_index(cache, path, on_bad, loaded)
    self.starts, self.ends = loaded["starts"], loaded["ends"]
    self.line_numbers = loaded["line_numbers"]
    self.identities = loaded["identities"]
    self.identity_names = tuple(str(n) for n in loaded["identity_names"])
    self.skipped = [tuple(json.loads(s)) for s in loaded["skipped"]]
    self._fd = None

  def __len__(self) -> int:
    return len(self.starts)

  def __getstate__(self):  # file descriptors do not pickle
    return {**self.__dict__, "_fd": None}

  def row(self, i: int) -> list[str]:
    """The 7 fields of face i (the JPEG still base64)."""
    if self._fd is None:
      self._fd = os.open(self.path, os.O_RDONLY)
    i = int(i)
    raw = os.pread(
      self._fd, int(self.ends[i] - self.starts[i]), int(self.starts[i])
    )
    return raw.decode("utf-8", "replace").split("\t")

  def where(self, i: int) -> str:
    return f"{self.path}, line {self.line_numbers[int(i)]}"

  def __getitem__(self, i):
    fields = self.row(i)
    try:
      data = base64.b64decode(fields[-1], validate=True)
      with Image.open(io.BytesIO(data)) as im:
        image = images.to_array(im)
    except (
      binascii.Error,
      ValueError,
      OSError,
      Image.DecompressionBombError,
    ) as e:
      raise DataError(
        f"{self.where(i)}, field 'face_data': cannot decode "
        f"the face ({type(e).__name__}: {e})"
      ) from e
    return {"image": image}

  def source_id(self, i: int) -> str:
    """``<MID>/<face id>``: names face i in a manifest."""
    fields = self.row(i)
    return f"{fields[0]}/{fields[4]}"


def _load_index(cache: pathlib.Path, path: str, on_bad: str):
  if not cache.exists():
    return None
  try:
    with np.load(cache, allow_pickle=False) as z:
      stamp = json.loads(str(z["stamp"]))
      if stamp != {**_stamp(path), "on_bad": on_bad}:
        return None
      return {k: z[k] for k in z.files if k != "stamp"}
  except (OSError, ValueError, KeyError):
    return None  # unreadable cache: rebuild it


def _save_index(cache: pathlib.Path, path: str, on_bad: str, arrays) -> None:
  tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npz")
  try:
    np.savez(
      tmp, stamp=json.dumps({**_stamp(path), "on_bad": on_bad}), **arrays
    )
    os.replace(tmp, cache)
  except OSError:
    tmp.unlink(missing_ok=True)  # a read-only folder: no cache, still fine


def write_tsv(path, faces, *, mids, face_ids=None, quality: int = 95) -> None:
  """Writes faces (uint8 [H, W, C] arrays) as an MS-Celeb-1M TSV file.

  For tests and for users who want their own pool in this format.
  """
  with open(path, "w", encoding="utf-8") as f:
    for k, (face, mid) in enumerate(zip(faces, mids)):
      buf = io.BytesIO()
      arr = np.asarray(face, np.uint8)
      Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(
        buf, "JPEG", quality=quality
      )
      fid = face_ids[k] if face_ids is not None else f"face{k}"
      f.write(
        "\t".join(
          [
            mid,
            str(k % 100),
            f"http://example.org/{k}.jpg",
            f"http://example.org/{k}.html",
            fid,
            "AAAAAAAA",
            base64.b64encode(buf.getvalue()).decode(),
          ]
        )
        + "\n"
      )
