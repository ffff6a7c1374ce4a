r"""Top classes of the shipped model (or a trained workdir's) for the faces
in photos or face crops.

  python -m jaxfer.predict photo.jpg album/
  python -m jaxfer.predict --workdir /tmp/jaxfer/default photo.jpg
  python -m jaxfer.predict --workdir /tmp/jaxfer/default --no-detect crop.png
  python -m jaxfer.predict --workdir /tmp/jaxfer/default --json album/ > out
  python -m jaxfer.predict clip.mp4 --every 5 --smooth 0.8 --csv rows.csv

Videos (.mp4, .avi, .mov, .mkv, .webm, .m4v; OpenCV reads them) give one
row per face per processed frame (`--every k`): frame, time, track (an
IoU tracker gives each face one id across frames), box, landmarks and the
class probabilities (`--smooth`: averaged over the track's past), as text,
`--json` lines or `--csv`; each video's tracks are drawn to
`<out_dir>/<name>_tracks.png`, and `--annotate` writes the frames with
their boxes. A video that cannot be read, or ends early, is an error naming
it, after the rows of the frames read (kept, and counted on stderr).

Arguments are image files or folders (their images at any depth). Faces
are found by MTCNN (`--detector mtcnn`, the default: boxes and five
landmarks, `jaxfer.detect`; `--align` aligns each face on its eyes and
nose) or OpenCV's Haar cascade (`--detector haar`); each face is cropped
as a square with `--margin` around its box; both come with the core
install (MTCNN's weights ship in the package). Each face's box (x, y, w, h in the photo's
pixels) is printed with its top classes (and, in `--json`, its landmarks);
a photo with no face says so. `--no-detect` classifies each image whole, for images that are already
face crops. `--json` writes one JSON object per image (JSON Lines). With
no `--workdir`, the model shipped in the package (`jaxfer.zoo`); with one,
its best checkpoint (or the latest with --nobest) and the config saved with
it; either way that config's evaluation preprocessing. An
unreadable image is reported by name and the others are still classified
(exit status 1). The last line on stderr gives the throughput.
"""

import functools
import json
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from jaxfer import detect
from jaxfer import zoo
from jaxfer.core import cli
from jaxfer.data import images as images_lib
from jaxfer.data.base import DataError
from jaxfer.detect import video


def _define_flags():
  cli.workdir_flag(
    "",
    "A workdir written by jaxfer.main "
    "(default: the model shipped with jaxfer).",
  )
  flags.DEFINE_bool("best", True, "Use the best checkpoint, else the latest.")
  flags.DEFINE_integer("top", 3, "How many classes to print per face.")
  flags.DEFINE_string(
    "model",
    "",
    "Which evaluated model (default: the first, "
    "e.g. 'model', 'ema', 'student').",
  )
  flags.DEFINE_bool(
    "detect",
    True,
    "Find faces in the photos (else: each image is a face crop).",
  )
  flags.DEFINE_float(
    "margin",
    detect.MARGIN,
    "Margin around a detected face, as a fraction of its side, on each side.",
  )
  flags.DEFINE_integer(
    "min_face", detect.MIN_FACE, "Smallest face side to detect (px)."
  )
  flags.DEFINE_enum(
    "detector",
    detect.DETECTORS[0],
    list(detect.DETECTORS),
    "mtcnn: boxes and five landmarks; haar: OpenCV's cascade, boxes only.",
  )
  flags.DEFINE_bool(
    "align",
    False,
    "Align faces that have landmarks (mtcnn) on their eyes and nose before "
    "classifying them (default: a square crop with --margin, as the "
    "shipped model's training faces were framed; on FER2013's PublicTest "
    "alignment cost it accuracy: docs, Inference).",
  )
  flags.DEFINE_bool(
    "json",
    False,
    "One JSON object per image, or per face and video frame, on stdout.",
  )
  flags.DEFINE_integer("every", 1, "Videos: process every k-th frame.")
  flags.DEFINE_float(
    "smooth",
    0.0,
    "Videos: average each track's probabilities over time "
    "(exponential moving average weight of the past, 0 = off, e.g. 0.8).",
  )
  flags.DEFINE_string(
    "out_dir",
    ".",
    "Videos: where <name>_tracks.png (and the annotated video) go.",
  )
  flags.DEFINE_bool(
    "annotate",
    False,
    "Videos: also write <name>_annotated.mp4 with boxes, tracks and classes.",
  )
  flags.DEFINE_string(
    "csv",
    "",
    "Videos: also write every face row here "
    "(path, frame, time, track, box, one column per class).",
  )
  flags.DEFINE_integer("batch_size", 64, "Faces per model call.")
  flags.DEFINE_bool(
    "fail_on_damage",
    False,
    "Videos: exit with status 1 when frames did not decode (by default "
    "they are skipped, counted and named, and the run succeeds).",
  )


read_image = images_lib.load_image


def expand_paths(args: list[str]) -> list[str]:
  """Files as given, folders as their images (sorted); a path that does not
  exist is an error naming it."""
  out = []
  for a in args:
    if os.path.isdir(a):
      found = images_lib.find_images(a)
      if not found:
        raise DataError(
          f"{a}: a folder with no images "
          f"({', '.join(sorted(images_lib.IMAGE_EXTENSIONS))})"
        )
      out += [os.path.join(a, f) for f in found]
    elif os.path.exists(a):
      out.append(a)
    else:
      raise DataError(f"{a}: no such file or folder")
  return out


def faces_of(path: str, finder) -> list[detect.Face]:
  """The faces of one image: detected by `finder`, or the whole image
  when `finder` is None."""
  image = read_image(path)
  if finder is None:
    h, w = image.shape[:2]
    return [detect.Face((0, 0, w, h), None, image)]
  return finder(image)


def record(path, faces, probs, names, top: int) -> dict:
  out = []
  for face, p in zip(faces, probs):
    best = np.argsort(-p)[:top]
    row = {
      "box": list(face.box),
      "classes": {names[i]: round(float(p[i]), 4) for i in best},
    }
    if face.landmarks is not None:
      row["landmarks"] = np.round(face.landmarks, 1).tolist()
    out.append(row)
  return {"path": path, "faces": out}


def text(rec: dict, detect: bool) -> list[str]:
  if "error" in rec:
    return [f"{rec['path']}: error: {rec['error']}"]
  if not rec["faces"]:
    return [f"{rec['path']}: no face found (--no-detect for face crops)"]
  lines = []
  for k, face in enumerate(rec["faces"]):
    classes = ", ".join(f"{c} {p:.3f}" for c, p in face["classes"].items())
    where = (
      (
        f" face {k + 1} at x={face['box'][0]} y={face['box'][1]} "
        f"w={face['box'][2]} h={face['box'][3]}"
      )
      if detect
      else ""
    )
    lines.append(f"{rec['path']}{where}: {classes}")
  return lines


def run(
  paths,
  clf,
  *,
  finder=None,
  top=3,
  batch_size=64,
  emit=print,
  video_options=None,
):
  """Classifies the faces of `paths` with `clf` (a `jaxfer.zoo.Model`) in
  batches, faces found by `finder` (a `jaxfer.detect.Finder`; None: each
  image is a face); `emit`s a record per image in order; returns counts
  and timings."""
  classify = functools.partial(clf.probabilities, batch_size=batch_size)
  t0 = time.perf_counter()
  classify([np.zeros((8, 8, clf.config.data.channels), np.uint8)])  # compile
  stats = dict(
    images=len(paths),
    faces=0,
    no_face=0,
    errors=0,
    compile_s=time.perf_counter() - t0,
    read_detect_s=0.0,
    model_s=0.0,
  )
  pending, crops = [], []

  def flush():
    t = time.perf_counter()
    probs = classify(crops) if crops else []
    stats["model_s"] += time.perf_counter() - t
    k = 0
    for path, faces in pending:
      if isinstance(faces, str):
        emit({"path": path, "error": faces})
        continue
      emit(record(path, faces, probs[k : k + len(faces)], clf.class_names, top))
      k += len(faces)
    pending.clear()
    crops.clear()

  for path in paths:
    if pathlib.Path(path).suffix.lower() in video.VIDEO_EXTENSIONS:
      flush()
      if finder is None:
        raise ValueError(
          f"{path}: a video needs face detection (drop --no-detect)"
        )
      v = video.run_video(
        path,
        clf,
        finder,
        batch_size=batch_size,
        emit=emit,
        **(video_options or {}),
      )
      stats["videos"] = stats.get("videos", 0) + 1
      for k in ("frames", "detect_s", "model_s", "rows", "damaged"):
        stats[f"video_{k}"] = stats.get(f"video_{k}", 0) + v[k]
      stats["images"] -= 1
      if "error" in v:
        stats["errors"] += 1
        stats["video_errors"] = stats.get("video_errors", 0) + 1
        emit({"path": path, "error": v["error"], "frames_read": v["frames"]})
      elif v["damaged"]:
        stats.setdefault("damaged_videos", []).append(path)
        emit(
          {
            "path": path,
            "damaged": v["damaged"],
            "damaged_frames": v["damaged_frames"],
            "frames_read": v["frames"],
          }
        )
      continue
    t = time.perf_counter()
    try:
      faces = faces_of(path, finder)
    except DataError as e:
      stats["errors"] += 1
      pending.append((path, str(e)))
      continue
    finally:
      stats["read_detect_s"] += time.perf_counter() - t
    stats["faces"] += len(faces)
    stats["no_face"] += not faces
    pending.append((path, faces))
    crops += [f.crop for f in faces]
    if len(crops) >= batch_size:
      flush()
  flush()
  return stats


def summary(stats: dict) -> str:
  """The run's one line: images (when there were any), then videos."""
  parts = []
  if stats["images"] or not stats.get("videos"):
    total = stats["read_detect_s"] + stats["model_s"]
    parts.append(
      f"{stats['images']} images, {stats['faces']} faces, "
      f"{stats['no_face']} with no face, {stats['errors'] - stats.get('video_errors', 0)} "
      f"unreadable; {total:.2f} s ({stats['images'] / max(total, 1e-9):.1f} "
      f"images/s; reading and detection {stats['read_detect_s']:.2f} s, "
      f"model {stats['model_s']:.2f} s; compiled in {stats['compile_s']:.1f} s)"
    )
  if stats.get("videos"):
    vt = stats["video_detect_s"] + stats["video_model_s"]
    rate = (
      f"{stats['video_frames'] / vt:.1f} frames/s" if vt > 0 else "no frame"
    )
    parts.append(
      f"{stats['videos']} videos, {stats['video_frames']} frames, "
      f"{stats['video_rows']} face rows, {stats['video_damaged']} damaged "
      f"frames skipped, {stats.get('video_errors', 0)} unreadable; {rate} (detection {stats['video_detect_s']:.2f} s, "
      f"model {stats['video_model_s']:.2f} s)"
    )
  return "jaxfer.predict: " + "; ".join(parts)


def main(argv):
  if not flags.FLAGS["verbosity"].present:  # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  if not argv[1:]:
    raise app.UsageError(
      "usage: python -m jaxfer.predict [--workdir DIR] IMAGE_OR_FOLDER..."
    )
  try:
    paths = expand_paths(argv[1:])
    clf = zoo.load(f.workdir, best=f.best)
  except (ValueError, FileNotFoundError) as e:
    print(f"jaxfer.predict: error: {e}", file=sys.stderr)
    sys.exit(1)
  try:
    clf = clf.select(f.model)
  except ValueError as e:
    print(f"jaxfer.predict: error: --model {e}", file=sys.stderr)
    sys.exit(1)

  rows_csv = video.CsvRows(f.csv, clf.class_names) if f.csv else None

  def emit(rec):
    if "error" in rec:
      where = "" if rec["error"].startswith(rec["path"]) else f"{rec['path']}: "
      print(f"jaxfer.predict: {where}{rec['error']}", file=sys.stderr)
    if "damaged" in rec:
      print(
        f"jaxfer.predict: {rec['path']}: {rec['damaged']} damaged frames "
        f"skipped (frames {video.Damaged.text(rec['damaged_frames'])}); "
        f"{rec['frames_read']} frames read",
        file=sys.stderr,
      )
      if f.json:
        print(json.dumps(rec), flush=False)
      return
    if "frame" in rec and rows_csv:
      rows_csv.write(rec)
    if f.json:
      print(json.dumps(rec), flush=False)
    elif "frame" in rec:
      print(video.video_text(rec, f.top))
    elif "error" not in rec:
      print("\n".join(text(rec, f.detect)))

  try:
    finder = (
      detect.Finder(
        f.detector, min_face=f.min_face, margin=f.margin, align=f.align
      )
      if f.detect
      else None
    )
    stats = run(
      paths,
      clf,
      finder=finder,
      top=f.top,
      batch_size=f.batch_size,
      emit=emit,
      video_options=dict(
        every=f.every, smooth=f.smooth, out_dir=f.out_dir, annotate=f.annotate
      ),
    )
  except (ImportError, ValueError) as e:
    print(f"jaxfer.predict: error: {e}", file=sys.stderr)
    sys.exit(1)
  finally:
    if rows_csv:
      rows_csv.close()
  sys.stdout.flush()
  print(summary(stats), file=sys.stderr)
  if stats["errors"] or (f.fail_on_damage and stats.get("damaged_videos")):
    sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with `--no-detect` read as absl's `--nodetect`."""
  return flags.FLAGS(["--nodetect" if a == "--no-detect" else a for a in argv])


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=parse_flags)
