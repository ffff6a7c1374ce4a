r"""`python -m jaxfer.bench detect`: MTCNN against the Haar cascade, and
what alignment does to the classifier.

  python -m jaxfer.bench detect --data_path $JAXFER_DATA/fer2013/fer2013.csv \
      --lfw $JAXFER_DATA/lfw --out /tmp/bench_detect.json

Three measurements, each printed as a table:

* LFW (one face near the centre of each 250x250 photo): the first photo of
  each of the first `--lfw_people` people; a photo counts as found when a
  detected box's centre is within 30 px of the photo's centre; boxes
  elsewhere are counted as other detections (LFW photos do show other
  people, so not all of them are false). Median ms per photo after a
  warm-up.
* Images without faces: FER2013's images that FER+'s annotators marked
  "not a face" (a majority of NF votes), upscaled 4x to 192x192; every
  detection there is false.
* Alignment and the classifier: PublicTest faces (known labels), upscaled
  3x; where MTCNN finds a face, the shipped model (or `--workdir`'s)
  classifies the original 48x48 crop (the training distribution itself),
  a square crop around MTCNN's box with predict's margin (`--noalign`)
  and the face aligned on its eyes and nose (`jaxfer.detect.align`);
  accuracy of the three on the same faces.
"""

import pathlib
import time

import numpy as np

from jaxfer import detect
from jaxfer import zoo
from jaxfer.data import build
from jaxfer.data import images
from jaxfer.data.sources import fer2013 as fer_lib
from jaxfer.detect import align
from jaxfer.detect import haar
from jaxfer.detect import mtcnn


def _finders():
  finder = haar.FaceFinder(haar.Detector(min_face=20))
  return {
    "haar": lambda img: [(x, y, x + w, y + h) for x, y, w, h in finder(img)],
    "mtcnn": lambda img: [tuple(b) for b in mtcnn.detect(img)[0]],
  }


def lfw_rows(root: str, people: int) -> dict:
  folders = sorted(p for p in pathlib.Path(root).iterdir() if p.is_dir())
  photos = [
    images.load_image(str(sorted(f.glob("*.jpg"))[0])) for f in folders[:people]
  ]
  out = {}
  for name, find in _finders().items():
    find(photos[0])  # warm-up (compilations)
    found = other = 0
    times = []
    for img in photos:
      t = time.perf_counter()
      boxes = find(img)
      times.append(time.perf_counter() - t)
      h, w = img.shape[:2]
      near = [
        abs((b[0] + b[2]) / 2 - w / 2) < 30
        and abs((b[1] + b[3]) / 2 - h / 2) < 30
        for b in boxes
      ]
      found += any(near)
      other += len(boxes) - sum(near)
    out[name] = {
      "photos": len(photos),
      "found": found,
      "found_rate": found / len(photos),
      "other_boxes": other,
      "ms_per_photo": 1000 * float(np.median(times)),
    }
  return out


def no_face_rows(data_path: str, upscale: int = 4, cache_dir: str = "") -> dict:
  import cv2  # pylint: disable=g-import-not-at-top

  pixels = fer_lib.load_arrays(data_path, cache_dir=cache_dir or None)[0]
  pixels = pixels.reshape(len(pixels), 48, 48)
  votes = fer_lib.ferplus_votes(
    str(pathlib.Path(data_path).parent / "ferplus" / "fer2013new.csv"),
    len(pixels),
  )
  nf = np.nonzero(votes[:, 9] > votes.sum(1) / 2)[0]
  imgs = [
    cv2.resize(pixels[i], (48 * upscale,) * 2, interpolation=cv2.INTER_LINEAR)[
      ..., None
    ]
    for i in nf
  ]
  out = {}
  for name, find in _finders().items():
    hits = [len(find(img)) for img in imgs]
    out[name] = {
      "images": len(imgs),
      "images_with_a_detection": int(np.sum(np.array(hits) > 0)),
      "detections": int(sum(hits)),
    }
  return out


def alignment_rows(
  clf,
  data_path: str,
  split: str = "PublicTest",
  upscale: int = 3,
  limit: int = 0,
) -> dict:
  import cv2  # pylint: disable=g-import-not-at-top

  cfg = clf.config.data.copy_and_resolve_references()
  cfg.path = data_path
  src = build.make_source(cfg, split)
  n = limit or len(src)
  side = 48 * upscale
  plain, boxed, aligned, labels = [], [], [], []
  for i in range(n):
    item = src[i]
    face = np.asarray(item["image"])
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
    big = big.reshape(side, side, -1)
    boxes, marks, _ = mtcnn.detect(big)
    if not len(marks):
      continue
    plain.append(face)
    x1, y1, x2, y2 = boxes[0]
    boxed.append(haar.crop(big, (x1, y1, x2 - x1, y2 - y1), 0.2))
    aligned.append(align.align(big, marks[0], side))
    labels.append(int(item["label"]))
  labels = np.array(labels)
  acc = {
    name: float(np.mean(clf.probabilities(faces).argmax(-1) == labels))
    for name, faces in (
      ("original crop", plain),
      ("box crop", boxed),
      ("aligned", aligned),
    )
  }
  return {"split": split, "faces": n, "found": len(labels), **acc}


def run(
  data_path: str,
  lfw: str,
  *,
  workdir: str = "",
  people: int = 500,
  limit: int = 0,
) -> dict:
  detect.Finder("mtcnn")  # says what to install, if anything
  clf = zoo.load(workdir).select()
  out = {
    "lfw": lfw_rows(lfw, people),
    "no_face": no_face_rows(data_path, cache_dir=clf.config.data.cache_dir),
    "alignment": alignment_rows(clf, data_path, limit=limit),
    "model": clf.name,
  }
  print(table(out))
  return out


def table(out: dict) -> str:
  lines = [
    "| detector | LFW photos with the face found | other boxes on LFW "
    "| FER+ 'not a face' images with a detection | ms per 250x250 "
    "photo |",
    "| --- | --- | --- | --- | --- |",
  ]
  for name in ("mtcnn", "haar"):
    lf, nf = out["lfw"][name], out["no_face"][name]
    lines.append(
      f"| {name} | {lf['found']} / {lf['photos']} ({100 * lf['found_rate']:.1f}%)"
      f" | {lf['other_boxes']} | {nf['images_with_a_detection']} / "
      f"{nf['images']} | {lf['ms_per_photo']:.1f} |"
    )
  a = out["alignment"]
  lines += [
    "",
    f"Alignment, {out['model']} on {a['split']} (MTCNN found "
    f"{a['found']} of {a['faces']} faces, upscaled 3x):",
    "",
    "| input | accuracy on those faces |",
    "| --- | --- |",
    f"| the original crop | {100 * a['original crop']:.2f}% |",
    f"| MTCNN's box, square with margin 0.2 (predict's default) | "
    f"{100 * a['box crop']:.2f}% |",
    f"| aligned on eyes and nose | {100 * a['aligned']:.2f}% |",
  ]
  return "\n".join(lines)
