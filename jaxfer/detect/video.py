"""Video: frames read by OpenCV, faces tracked across them, one row per
face per frame, in memory that does not grow with the video's length.

`frames` yields every `every`-th frame (RGB) with its index and time. A
frame that does not decode (a damaged packet, or the end of a truncated
file before the frame count its header gives) is skipped and recorded by
number in a `Damaged`; a file OpenCV cannot open, or one that yields no
frame, is a `DataError` naming it. `IoUTracker` gives each face a track
id: a box continues the track whose last box it overlaps most (IoU >=
`min_iou`), unmatched boxes start new tracks, a track unseen for
`max_age` processed frames ends. `Smoother` averages each track's
probabilities over time (an exponential moving average). `TrackPlot`
keeps a bounded thinned copy of each track's probabilities and draws them
over time; `CsvRows` writes the rows as they come.
"""

import csv
import dataclasses
import functools
import pathlib

import numpy as np

from jaxfer.data.base import DataError

VIDEO_EXTENSIONS = frozenset((".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"))


# Consecutive undecodable frames after which the rest of a file counts as
# unreadable (a truncated file ends in them).
MAX_GAP = 30


class Damaged:
  """The frame numbers that did not decode, as inclusive ranges."""

  def __init__(self):
    self.ranges: list[list[int]] = []

  def add(self, first: int, last: int | None = None) -> None:
    last = first if last is None else last
    if self.ranges and self.ranges[-1][1] + 1 >= first:
      self.ranges[-1][1] = max(self.ranges[-1][1], last)
    else:
      self.ranges.append([first, last])

  def __len__(self) -> int:
    return sum(b - a + 1 for a, b in self.ranges)

  def __str__(self) -> str:
    return self.text(self.ranges)

  @staticmethod
  def text(ranges) -> str:
    """ "50-51, 60" for [[50, 51], [60, 60]]."""
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in ranges)


def frames(path: str, every: int = 1, damaged: Damaged | None = None):
  """(index, seconds, uint8 RGB frame) of every `every`-th frame.

  A frame that does not decode is skipped and recorded in `damaged`. Frame
  numbers come from the container's timestamps (so a packet the decoder
  drops without an error still counts), else from counting reads; after
  `MAX_GAP` failed reads in a row, or at the end, the frames missing up to
  the header's count are recorded too. Without `damaged`, any such frame
  is a DataError after the frames read. A file that cannot be opened or
  yields no frame is a DataError naming it.
  """
  import cv2  # pylint: disable=g-import-not-at-top

  if every < 1:
    raise ValueError(f"--every must be >= 1, got {every}")
  cap = cv2.VideoCapture(str(path))
  if not cap.isOpened():
    raise DataError(f"{path}: not a video OpenCV can open")
  fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
  expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  lost = Damaged() if damaged is None else damaged
  index, gap, decoded = 0, 0, 0  # index: the next frame's number
  try:
    while gap < MAX_GAP:
      if not cap.grab():
        if fps <= 0:  # no timestamps: a failed read is a frame
          if index >= expected:
            break
          lost.add(index)
          index += 1
        gap += 1
        continue
      if fps > 0:
        at = round(cap.get(cv2.CAP_PROP_POS_MSEC) * fps / 1000)
        if at > index:
          lost.add(index, at - 1)
        index = max(index, at)
      gap = 0
      if index % every == 0:
        ok, frame = cap.retrieve()
        if ok:
          decoded += 1
          yield (
            index,
            index / fps if fps > 0 else float("nan"),
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB),
          )
        else:
          lost.add(index)
      else:
        decoded += 1
      index += 1
  finally:
    cap.release()
  if decoded == 0:
    raise DataError(f"{path}: no frame could be decoded")
  if index < expected:
    lost.add(index, expected - 1)
  if damaged is None and len(lost):
    raise DataError(
      f"{path}: damaged: decoded {decoded} of the {expected} frames its "
      f"header announces (frames {lost} unreadable)"
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

  def keep(self, tracks) -> None:
    """Forgets the tracks that ended (bounded state on long videos)."""
    self.state = {t: v for t, v in self.state.items() if t in tracks}


class TrackPlot:
  """Each track's probabilities over time for `draw`, in bounded memory:
  at most `points` per track (when full, every other point is dropped and
  the track keeps every second one from then on) and the `tracks` longest
  tracks."""

  def __init__(self, class_names, points: int = 1000, tracks: int = 12):
    self.class_names, self.points, self.max_tracks = class_names, points, tracks
    self.data: dict[int, dict] = {}

  def add(self, row: dict) -> None:
    t = self.data.setdefault(row["track"], dict(x=[], p=[], stride=1, n=0))
    if t["n"] % t["stride"] == 0:
      x = row["time"] if np.isfinite(row["time"]) else row["frame"]
      t["x"].append(x)
      t["p"].append([row["probabilities"][c] for c in self.class_names])
      if len(t["x"]) > self.points:
        t["x"], t["p"], t["stride"] = t["x"][::2], t["p"][::2], 2 * t["stride"]
    t["n"] += 1
    if len(self.data) > self.max_tracks:
      del self.data[min(self.data, key=lambda k: self.data[k]["n"])]

  def draw(self, path, title: str = ""):
    """One panel per track: each class's probability against time."""
    from jaxfer.core import report  # pylint: disable=g-import-not-at-top

    tracks = sorted(self.data)
    if not tracks:
      return None
    fig, axes = report.subplots(
      len(tracks), 1, figsize=(8, 2.2 * len(tracks) + 0.6)
    )
    axes = np.atleast_1d(axes)
    for ax, t in zip(axes, tracks):
      p = np.asarray(self.data[t]["p"])
      for k, c in enumerate(self.class_names):
        ax.plot(self.data[t]["x"], p[:, k], label=c)
      ax.set_ylim(0, 1)
      ax.set_ylabel(f"track {t}")
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(ncol=len(self.class_names), fontsize=7, loc="upper center")
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
  damaged: Damaged | None = None,
) -> dict:
  """Emits a row per face per processed frame (path, frame, time, track,
  box, landmarks, probabilities) as it comes, keeping none; `classify`:
  list of uint8 crops -> [N, C] probabilities; `finder`: a
  `jaxfer.detect.Finder`; undecodable frames go to `damaged` (see
  `frames`). Returns the counts and timings."""
  import time  # pylint: disable=g-import-not-at-top

  tracker, smoother, writer = IoUTracker(), Smoother(smooth), None
  stats = {"frames": 0, "faces": 0, "detect_s": 0.0, "model_s": 0.0}
  try:
    for index, t, frame in frames(path, every, damaged):
      t0 = time.perf_counter()
      faces = finder(frame)
      t1 = time.perf_counter()
      probs = classify([f.crop for f in faces]) if faces else []
      stats["detect_s"] += t1 - t0
      stats["model_s"] += time.perf_counter() - t1
      stats["frames"] += 1
      ids = tracker([f.box for f in faces])
      rows = []
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
      smoother.keep(tracker.tracks)
      stats["faces"] += len(faces)
      if annotate:
        writer = _annotate(writer, annotate, frame, rows)
  finally:
    if writer is not None:
      writer.release()
  return stats


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
  returns its stats: "damaged" (the count) and "damaged_frames" (inclusive
  ranges) for frames that did not decode, "error" when the file yields no
  frame."""
  stem = pathlib.Path(path).stem
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  plot, damaged, rows = TrackPlot(clf.class_names), Damaged(), [0]

  def keep(row):
    rows[0] += 1
    plot.add(row)
    emit(row)

  # A frame holds a few faces: a small fixed batch (one compilation)
  # instead of padding each frame's faces to a photo batch of 64.
  classify = functools.partial(clf.probabilities, batch_size=min(batch_size, 8))
  try:
    stats = analyse(
      path,
      classify,
      clf.class_names,
      finder,
      every=every,
      smooth=smooth,
      emit=keep,
      annotate=str(out / f"{stem}_annotated.mp4") if annotate else "",
      damaged=damaged,
    )
  except DataError as e:
    stats = {"frames": 0, "faces": 0, "detect_s": 0.0, "model_s": 0.0}
    stats["error"] = str(e)
  png = plot.draw(out / f"{stem}_tracks.png", title=str(path))
  if png:
    stats["png"] = str(png)
  stats.update(rows=rows[0], damaged=len(damaged))
  stats["damaged_frames"] = damaged.ranges
  return stats


class CsvRows:
  """Video rows written to a CSV as they come: path, frame, time, track,
  x, y, w, h, then one probability column per class."""

  def __init__(self, path: str, class_names):
    self.class_names = class_names
    self.fh = open(path, "w", newline="")  # pylint: disable=consider-using-with
    self.w = csv.writer(self.fh)
    self.w.writerow(
      ["path", "frame", "time", "track", "x", "y", "w", "h", *class_names]
    )

  def write(self, r: dict) -> None:
    self.w.writerow(
      [
        r["path"],
        r["frame"],
        r["time"],
        r["track"],
        *r["box"],
        *(r["probabilities"][c] for c in self.class_names),
      ]
    )

  def close(self) -> None:
    self.fh.close()
