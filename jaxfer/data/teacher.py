"""A teacher's class probabilities as soft training targets (distillation).

`python -m jaxfer.evaluate --workdir A,B --split Training
--probabilities_out teacher.npz` writes the mean class probabilities of
an ensemble of trained models on every row of a split, with each row's id
(the CSV row of FER2013). `config.data.teacher.path` names such a file;
the labeled stream's targets become

    weight * teacher + (1 - weight) * original

where the original target is the row's soft label if it has one (FER+
votes) else its one-hot label (`config.label_smoothing` applies after).
Rows are matched by id, so a 10% subset or a split with dropped rows
takes the teacher's row for each of its own; a row of the split missing
from the file, or other class names, is an error naming the file.
"""

import dataclasses
import os

import numpy as np

from jaxfer.data import base

FIELDS = ("probabilities", "rows", "class_names")


def save(path: str, probabilities, rows, class_names, **info) -> None:
  """Writes a teacher file: float32 [N, C] probabilities, int64 [N] row
  ids, the class names, and any `info` (members, split, flip) as strings."""
  probabilities = np.asarray(probabilities, np.float32)
  rows = np.asarray(rows, np.int64)
  if probabilities.shape != (len(rows), len(class_names)):
    raise ValueError(
      f"probabilities {probabilities.shape} do not match {len(rows)} rows "
      f"of {len(class_names)} classes"
    )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    np.savez(
      f,
      probabilities=probabilities,
      rows=rows,
      class_names=np.array(class_names),
      **{k: np.array(str(v)) for k, v in info.items()},
    )


def load(path: str) -> dict:
  """{"probabilities", "rows", "class_names"} of a teacher file, checked."""
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise base.DataError(f"teacher file not found: {path}")
  with np.load(path) as f:
    missing = [k for k in FIELDS if k not in f.files]
    if missing:
      raise base.DataError(
        f"{path}: no {missing} (not written by jaxfer.evaluate "
        "--probabilities_out)"
      )
    out = {k: f[k] for k in FIELDS}
  p, rows = out["probabilities"], out["rows"]
  if p.ndim != 2 or p.shape != (len(rows), len(out["class_names"])):
    raise base.DataError(
      f"{path}: probabilities {p.shape} do not match {len(rows)} rows of "
      f"{len(out['class_names'])} classes"
    )
  sums = p.sum(axis=1)
  bad = np.flatnonzero(
    ~np.isfinite(sums) | (np.abs(sums - 1) > 1e-3) | (p.min(axis=1) < 0)
  )
  if bad.size:
    raise base.DataError(
      f"{path}: row id {rows[bad[0]]} (entry {bad[0]}) is not a probability "
      f"distribution (sum {sums[bad[0]]:.4f}); {bad.size} such entries"
    )
  if len(np.unique(rows)) != len(rows):
    raise base.DataError(f"{path}: repeated row ids")
  out["class_names"] = tuple(str(c) for c in out["class_names"])
  return out


def targets(src, teacher: dict, weight: float, where: str) -> np.ndarray:
  """float32 [len(src), C]: the mixed targets of `src`'s rows (module)."""
  if not 0 < weight <= 1:
    raise ValueError(
      f"config.data.teacher.weight must be in (0, 1], got {weight}"
    )
  names = tuple(src.class_names)
  if teacher["class_names"] != names:
    raise base.DataError(
      f"{where}: classes {teacher['class_names']} are not {src.name}'s "
      f"{names} (in that order)"
    )
  rows = base.row_ids(src)
  order = np.argsort(teacher["rows"])
  pos = np.searchsorted(teacher["rows"], rows, sorter=order)
  pos = np.minimum(pos, len(order) - 1)
  found = teacher["rows"][order[pos]] == rows
  if not found.all():
    missing = rows[~found]
    raise base.DataError(
      f"{where}: {missing.size} rows of {src.name} have no teacher "
      f"probabilities, e.g. row ids {missing[:5].tolist()}"
    )
  soft = getattr(src, "soft_labels", None)
  original = (
    np.eye(len(names), dtype=np.float32)[src.labels]
    if soft is None
    else np.asarray(soft, np.float32)
  )
  mixed = (
    weight * teacher["probabilities"][order[pos]] + (1 - weight) * original
  )
  return mixed.astype(np.float32)


def attach(src, cfg):
  """`src` (a labeled in-memory source) with `cfg.path`'s teacher targets
  as its soft labels (`cfg`: `config.data.teacher`)."""
  if not isinstance(src, base.ArraySource):
    raise ValueError(
      f"config.data.teacher needs an in-memory labeled source (FER2013's "
      f"CSV, a distilled set); {src.name} is a {type(src).__name__}"
    )
  path = os.path.expanduser(cfg.path)
  mixed = targets(src, load(path), cfg.weight, path)
  out = dataclasses.replace(src, soft_labels=mixed, name=f"{src.name}+teacher")
  for attr in ("rows", "dropped"):
    if hasattr(src, attr):
      setattr(out, attr, getattr(src, attr))
  return out
