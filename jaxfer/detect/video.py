"""Video: frames read by OpenCV, faces tracked across them, one row per
face per frame.

`frames` yields every `every`-th frame (RGB) with its index and time;
a file OpenCV cannot open, or one that ends before the frame count its
header gives (a truncated file), is a `DataError` naming it, raised after
the frames that were read. `IoUTracker` gives each face a track id: a box
continues the track whose last box it overlaps most (IoU >= `min_iou`),
unmatched boxes start new tracks, a track unseen for `max_age` processed
frames ends. `smooth` averages each track's probabilities over time (an
exponential moving average). `probability_png` draws each track's
probabilities over time.
"""

import csv
import dataclasses
import functools
import pathlib

import numpy as np

from jaxfer.data.base import DataError

VIDEO_EXTENSIONS = frozenset((".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"))


def frames(path: str, every: int = 1):
  """(index, seconds, uint8 RGB frame) of every `every`-th frame.

  Raises DataError (naming the file) if it cannot be opened, or, after the
  frames read, if it ends before its header's frame count.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  if every < 1:
    raise ValueError(f"--every must be >= 1, got {every}")
  cap = cv2.VideoCapture(str(path))
  if not cap.isOpened():
    raise DataError(f"{path}: not a video OpenCV can open")
  fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
  expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  index = 0
  try:
    while True:
      ok = cap.grab()
      if not ok:
        break
      if index % every == 0:
        ok, frame = cap.retrieve()
        if not ok:
          break
        t = index / fps if fps > 0 else float("nan")
        yield index, t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
      index += 1
  finally:
    cap.release()
  if index == 0:
    raise DataError(f"{path}: no frame could be decoded")
  if expected and index < expected:
    raise DataError(
      f"{path}: truncated or corrupt: decoded {index} of the {expected} "
      "frames its header announces"
    )


def iou(a, b) -> float:
  """Overlap of two (x, y, w, h) boxes."""
  ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
  iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
  ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
  inter = iw * ih
  union = a[2] * a[3] + b[2] * b[3] - inter
  return inter / union if union > 0 else 0.0


@dataclasses.dataclass
class IoUTracker:
  """Track ids for boxes, frame after frame (greedy IoU matching)."""

  min_iou: float = 0.3
  max_age: int = 10
  tracks: dict = dataclasses.field(default_factory=dict)  # id: (box, seen)
  next_id: int = 0
  step: int = 0

  def __call__(self, boxes) -> list[int]:
    """The track id of each box of the next processed frame."""
    self.step += 1
    pairs = sorted(
      (
        (iou(box, tb), i, tid)
        for i, box in enumerate(boxes)
        for tid, (tb, _) in self.tracks.items()
      ),
      reverse=True,
    )
    ids, used = [None] * len(boxes), set()
    for overlap, i, tid in pairs:
      if overlap < self.min_iou:
        break
      if ids[i] is None and tid not in used:
        ids[i] = tid
        used.add(tid)
    for i, box in enumerate(boxes):
      if ids[i] is None:
        ids[i], self.next_id = self.next_id, self.next_id + 1
      self.tracks[ids[i]] = (tuple(box), self.step)
    self.tracks = {
      t: v for t, v in self.tracks.items() if self.step - v[1] < self.max_age
    }
    return ids


@dataclasses.dataclass
class Smoother:
  """Per-track exponential moving average of class probabilities:
  p_t = alpha p_{t-1} + (1 - alpha) q_t (alpha 0: no smoothing)."""

  alpha: float = 0.0
  state: dict = dataclasses.field(default_factory=dict)

  def __call__(self, track: int, probs: np.ndarray) -> np.ndarray:
    prev = self.state.get(track)
    out = (
      probs if prev is None else self.alpha * prev + (1 - self.alpha) * probs
    )
    self.state[track] = out
    return out


def probability_png(rows: list[dict], class_names, path, title: str = ""):
  """One panel per track: each class's probability against time."""
  from jaxfer.core import report  # pylint: disable=g-import-not-at-top

  tracks = sorted({r["track"] for r in rows})
  if not tracks:
    return None
  fig, axes = report.subplots(
    len(tracks), 1, figsize=(8, 2.2 * len(tracks) + 0.6)
  )
  axes = np.atleast_1d(axes)
  for ax, t in zip(axes, tracks):
    mine = [r for r in rows if r["track"] == t]
    x = [r["time"] if np.isfinite(r["time"]) else r["frame"] for r in mine]
    for c in class_names:
      ax.plot(x, [r["probabilities"][c] for r in mine], label=c)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"track {t}")
  axes[-1].set_xlabel("time (s)")
  axes[0].legend(ncol=len(class_names), fontsize=7, loc="upper center")
  if title:
    axes[0].set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  return path


def analyse(
  path: str,
  classify,
  class_names,
  finder,
  *,
  every: int = 1,
  smooth: float = 0.0,
  emit=None,
  annotate: str = "",
) -> tuple[list[dict], dict]:
  """Rows (one per face per processed frame: path, frame, time, track,
  box, landmarks, probabilities) of a video, each `emit`ted as it comes;
  `classify`: list of uint8 crops -> [N, C] probabilities; `finder`: a
  `jaxfer.detect.Finder`. Returns (rows, stats); a read error is raised
  after the rows of the frames read (stats["error"] says how many)."""
  import time  # pylint: disable=g-import-not-at-top

  tracker, smoother = IoUTracker(), Smoother(smooth)
  rows, writer = [], None
  stats = {"frames": 0, "faces": 0, "detect_s": 0.0, "model_s": 0.0}
  try:
    for index, t, frame in frames(path, every):
      t0 = time.perf_counter()
      faces = finder(frame)
      t1 = time.perf_counter()
      probs = classify([f.crop for f in faces]) if faces else []
      stats["detect_s"] += t1 - t0
      stats["model_s"] += time.perf_counter() - t1
      stats["frames"] += 1
      ids = tracker([f.box for f in faces])
      for face, track, p in zip(faces, ids, probs):
        p = smoother(track, np.asarray(p))
        row = {
          "path": str(path),
          "frame": index,
          "time": round(t, 4),
          "track": track,
          "box": list(face.box),
          "probabilities": {
            c: round(float(v), 4) for c, v in zip(class_names, p)
          },
        }
        if face.landmarks is not None:
          row["landmarks"] = np.round(face.landmarks, 1).tolist()
        rows.append(row)
        if emit:
          emit(row)
      stats["faces"] += len(faces)
      if annotate:
        writer = _annotate(
          writer, annotate, frame, rows[len(rows) - len(faces) :]
        )
  finally:
    if writer is not None:
      writer.release()
  return rows, stats


def _annotate(writer, out: str, frame: np.ndarray, rows: list[dict]):
  """Draws the frame's boxes, track ids and top classes into `out`."""
  import cv2  # pylint: disable=g-import-not-at-top

  if writer is None:
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
    if not writer.isOpened():
      raise DataError(f"{out}: OpenCV cannot write this video file")
  img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
  for r in rows:
    x, y, w, h = r["box"]
    top = max(r["probabilities"], key=r["probabilities"].get)
    cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 2)
    label = f"{r['track']}: {top} {r['probabilities'][top]:.2f}"
    cv2.putText(
      img,
      label,
      (x, max(y - 4, 10)),
      cv2.FONT_HERSHEY_SIMPLEX,
      0.5,
      (0, 255, 0),
      1,
    )
  writer.write(img)
  return writer


def video_text(row: dict, top: int) -> str:
  probs = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:top]
  x, y, w, h = row["box"]
  return (
    f"{row['path']} frame {row['frame']} ({row['time']:.2f} s) track "
    f"{row['track']} at x={x} y={y} w={w} h={h}: "
    + ", ".join(f"{c} {p:.3f}" for c, p in probs)
  )


def run_video(
  path,
  clf,
  finder,
  *,
  every=1,
  smooth=0.0,
  out_dir=".",
  annotate=False,
  batch_size=64,
  emit=print,
) -> dict:
  """One video: a row per face per processed frame `emit`ted, the tracks'
  probabilities drawn to `<out_dir>/<name>_tracks.png` (and, with
  `annotate`, the frames with their boxes to `<name>_annotated.mp4`);
  returns its stats (with "error" and the rows kept when it fails)."""
  stem = pathlib.Path(path).stem
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  rows = []

  def keep(row):
    rows.append(row)
    emit(row)

  # A frame holds a few faces: a small fixed batch (one compilation)
  # instead of padding each frame's faces to a photo batch of 64.
  classify = functools.partial(clf.probabilities, batch_size=min(batch_size, 8))
  stats = {"frames": 0, "faces": 0, "detect_s": 0.0, "model_s": 0.0}
  try:
    _, stats = analyse(
      path,
      classify,
      clf.class_names,
      finder,
      every=every,
      smooth=smooth,
      emit=keep,
      annotate=str(out / f"{stem}_annotated.mp4") if annotate else "",
    )
  except DataError as e:
    stats = {
      **stats,
      "frames": len({r["frame"] for r in rows}),
      "faces": len(rows),
      "error": str(e),
    }
  if rows:
    stats["png"] = str(
      probability_png(
        rows, clf.class_names, out / f"{stem}_tracks.png", title=str(path)
      )
    )
  stats["rows"] = len(rows)
  return stats


def write_csv(path: str, rows: list[dict], class_names) -> None:
  """The video rows as CSV: path, frame, time, track, x, y, w, h, then one
  probability column per class."""
  with open(path, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(
      ["path", "frame", "time", "track", "x", "y", "w", "h", *class_names]
    )
    for r in rows:
      w.writerow(
        [
          r["path"],
          r["frame"],
          r["time"],
          r["track"],
          *r["box"],
          *(r["probabilities"][c] for c in class_names),
        ]
      )
