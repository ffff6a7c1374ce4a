"""`python -m jaxfer.predict` on uncropped photos: faces found by the Haar
cascade in real LFW photos and in a two-face composite, crops with a margin,
photos with no face and unreadable files reported, --no-detect, --json."""

import json
import pathlib
import re

import numpy as np
from PIL import Image
import pytest

from conftest import LFW
from conftest import config
from conftest import need
from conftest import python
from jaxfer import detect
from jaxfer import zoo
from jaxfer.data import images
from jaxfer.detect import haar as faces
from jaxfer.detect import video
from jaxfer.loop import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
cv2 = pytest.importorskip(
  "cv2",
  reason="face detection needs opencv-python-headless<5 (the "
  "test extra installs it)",
)


def _lfw(n):
  need(LFW)
  people = sorted(p for p in LFW.iterdir() if p.is_dir())
  return [sorted(p.glob("*.jpg"))[0] for p in people[:n]]


def test_expand_is_a_square_with_margin_clipped_to_the_image():
  # 40x20 box at (10, 30): side 40 * 1.5 = 60 around the centre (30, 40)
  assert faces.expand((10, 30, 40, 20), 0.25, 200, 200) == (0, 10, 60, 70)
  assert faces.expand((100, 100, 40, 40), 0.0, 200, 200) == (100, 100, 140, 140)
  assert faces.expand((180, 180, 40, 40), 0.5, 200, 200) == (160, 160, 200, 200)
  img = np.arange(200 * 200, dtype=np.uint8).reshape(200, 200, 1)
  c = faces.crop(img, (100, 100, 40, 40), 0.25)
  assert c.shape == (60, 60, 1) and c[0, 0, 0] == img[90, 90, 0]


def test_real_lfw_photos_have_one_face_near_the_centre():
  finder = faces.FaceFinder()
  found = [finder(images.load_image(str(p))) for p in _lfw(40)]
  one = [b for b in found if len(b) >= 1]
  assert len(one) >= 36, [len(b) for b in found]  # LFW: centred, frontal
  for b in one:  # the largest face is the photo's subject
    x, y, w, h = b[0]
    assert abs(x + w / 2 - 125) < 25 and abs(y + h / 2 - 125) < 25
    assert 60 < w < 200


def _composite(paths, size=(300, 640)):
  """Two LFW photos pasted side by side on a flat grey canvas."""
  canvas = np.full((*size, 1), 128, np.uint8)
  for k, p in enumerate(paths):
    canvas[25:275, 40 + 320 * k : 290 + 320 * k] = images.load_image(str(p))
  return canvas


def test_two_faces_in_one_photo_and_none_in_a_blank_one():
  finder = faces.FaceFinder()
  boxes = finder(_composite(_lfw(2)))
  centres = sorted((x + w / 2) for x, y, w, h in boxes[:2])
  assert len(boxes) == 2, boxes
  assert abs(centres[0] - 165) < 25 and abs(centres[1] - 485) < 25
  assert len(finder(np.full((300, 400, 3), 90, np.uint8))) == 0
  # a large photo is searched downscaled: the boxes come back in its pixels
  big = np.repeat(np.repeat(_composite(_lfw(2)), 4, 0), 4, 1)  # 1200x2560
  big_boxes = finder(big)
  assert len(big_boxes) == 2, big_boxes
  np.testing.assert_allclose(
    sorted(big_boxes[:, 0]), sorted(4 * boxes[:2, 0]), atol=40
  )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  wd = tmp_path_factory.mktemp("predict") / "wd"
  c = config("default", "smoke")
  c.total_steps, c.checkpoint.every, c.eval_every = 4, 4, 4
  train.run(c, str(wd))
  return wd


def _run(*args):
  return python("-m", "jaxfer.predict", *args)


@pytest.mark.slow
def test_cli_folder_json_boxes_probabilities_and_bad_files(workdir, tmp_path):
  photos = tmp_path / "album"
  (photos / "sub").mkdir(parents=True)
  Image.fromarray(_composite(_lfw(2))[..., 0]).save(photos / "a_two.png")
  Image.fromarray(np.full((200, 300), 128, np.uint8)).save(
    photos / "b_blank.png"
  )
  (photos / "sub" / "c_broken.jpg").write_bytes(b"not a jpeg")
  p = _run(f"--workdir={workdir}", "--json", "--top=7", str(photos))
  assert p.returncode == 1, p.stderr[-2000:]  # the broken file
  recs = [json.loads(line) for line in p.stdout.splitlines()]
  assert [pathlib.Path(r["path"]).name for r in recs] == [
    "a_two.png",
    "b_blank.png",
    "c_broken.jpg",
  ]
  assert len(recs[0]["faces"]) == 2 and recs[1]["faces"] == []
  assert "c_broken.jpg" in recs[2]["error"] and "c_broken.jpg" in p.stderr
  assert "3 images, 2 faces, 1 with no face, 1 unreadable" in p.stderr
  assert "images/s" in p.stderr.splitlines()[-1]
  # each face's classes are the model's on its aligned crop (MTCNN, the
  # default detector: boxes with five landmarks inside them)
  clf = zoo.load(str(workdir), model="model")
  photo = images.load_image(str(photos / "a_two.png"))
  found = detect.Finder("mtcnn")(photo)
  assert [list(f.box) for f in found] == [f["box"] for f in recs[0]["faces"]]
  probs = clf.probabilities([f.crop for f in found])
  for face, pr in zip(recs[0]["faces"], probs):
    assert len(face["classes"]) == 7
    x, y, w, h = face["box"]
    for lx, ly in face["landmarks"]:
      assert x - 2 <= lx <= x + w + 2 and y - 2 <= ly <= y + h + 2
    for name, value in face["classes"].items():
      assert value == pytest.approx(pr[clf.class_names.index(name)], abs=1e-3)


@pytest.mark.slow
def test_cli_text_and_no_detect(workdir, tmp_path):
  photo = tmp_path / "two.png"
  Image.fromarray(_composite(_lfw(2))[..., 0]).save(photo)
  p = _run(f"--workdir={workdir}", "--detector=haar", str(photo))
  assert p.returncode == 0, p.stderr[-2000:]
  lines = p.stdout.splitlines()
  assert len(lines) == 2 and all(
    " face " in line and " w=" in line for line in lines
  )
  p = _run(f"--workdir={workdir}", "--no-detect", str(photo))
  assert p.returncode == 0, p.stderr[-2000:]
  assert len(p.stdout.splitlines()) == 1
  assert p.stdout.startswith(f"{photo}: ")
  p = _run(f"--workdir={workdir}", str(tmp_path / "nowhere.jpg"))
  assert p.returncode == 1 and "nowhere.jpg: no such file" in p.stderr


def _video(path, frames, fps=10.0):
  cv2_ = pytest.importorskip("cv2")
  h, w = frames[0].shape[:2]
  out = cv2_.VideoWriter(
    str(path), cv2_.VideoWriter_fourcc(*"MJPG"), fps, (w, h)
  )
  assert out.isOpened()
  for f in frames:
    out.write(np.repeat(f, 3, -1) if f.shape[-1] == 1 else f[..., ::-1])
  out.release()
  return path


@pytest.mark.slow
def test_video_rows_tracks_plot_csv_and_a_truncated_file(tmp_path):
  """A 24-frame clip built from two LFW photos: person A on the left in
  frames 0-15 (drifting right by 2 px a frame), person B on the right in
  frames 8-23; two tracks, one row per face per frame."""
  a, b = (images.load_image(str(p)) for p in _lfw(2))
  frames = []
  for k in range(24):
    canvas = np.full((300, 640, 1), 128, np.uint8)
    if k < 16:
      canvas[25:275, 20 + 2 * k : 270 + 2 * k] = a
    if k >= 8:
      canvas[25:275, 360:610] = b
    frames.append(canvas)
  clip = _video(tmp_path / "clip.avi", frames)
  p = _run(
    "--json",
    "--csv",
    str(tmp_path / "rows.csv"),
    "--out_dir",
    str(tmp_path / "plots"),
    str(clip),
  )
  assert p.returncode == 0, p.stderr[-3000:]
  rows = [json.loads(line) for line in p.stdout.splitlines()]
  assert len(rows) == 16 + 16
  for r in rows:
    assert {"frame", "time", "track", "box", "probabilities"} <= set(r)
    assert abs(sum(r["probabilities"].values()) - 1) < 1e-3
  by_track = {}
  for r in rows:
    by_track.setdefault(r["track"], []).append(r)
  assert len(by_track) == 2, {t: len(v) for t, v in by_track.items()}
  left, right = sorted(by_track.values(), key=lambda v: v[0]["box"][0])
  assert [r["frame"] for r in left] == list(range(16))
  assert [r["frame"] for r in right] == list(range(8, 24))
  assert all(r["box"][0] < 320 for r in left) and all(
    r["box"][0] > 320 for r in right
  )
  assert (
    rows[1]["time"] == pytest.approx(0.1, abs=1e-3) or rows[1]["frame"] == 1
  )
  assert (tmp_path / "plots" / "clip_tracks.png").stat().st_size > 1000
  lines = (tmp_path / "rows.csv").read_text().splitlines()
  assert (
    lines[0].startswith("path,frame,time,track,x,y,w,h,angry")
    and len(lines) == 33
  )
  assert "32 face rows" in p.stderr
  # in process: --every 4 with smoothing, then a truncated file
  clf = zoo.load()
  finder = detect.Finder("mtcnn")
  every = []
  v = video.run_video(
    str(clip),
    clf,
    finder,
    every=4,
    smooth=0.8,
    out_dir=str(tmp_path),
    emit=every.append,
  )
  assert sorted({r["frame"] for r in every}) == [0, 4, 8, 12, 16, 20]
  assert v["rows"] == len(every) and "error" not in v
  # smoothing: a track's rows are the running average of the raw ones
  raw = []
  video.run_video(
    str(clip), clf, finder, every=4, out_dir=str(tmp_path), emit=raw.append
  )
  for t in {r["track"] for r in raw}:
    r_raw = [r for r in raw if r["track"] == t]
    r_s = [r for r in every if r["track"] == t]
    ema = np.array(list(r_raw[0]["probabilities"].values()))
    for a, b in zip(r_raw[1:], r_s[1:]):
      ema = 0.8 * ema + 0.2 * np.array(list(a["probabilities"].values()))
      np.testing.assert_allclose(
        list(b["probabilities"].values()), ema, atol=2e-3
      )
  # a truncated file: the frames read are kept, the lost ones named
  data = clip.read_bytes()
  cut = tmp_path / "cut.avi"
  cut.write_bytes(data[: len(data) // 2])
  kept = []
  v = video.run_video(
    str(cut), clf, finder, out_dir=str(tmp_path), emit=kept.append
  )
  assert "error" not in v and v["rows"] == len(kept) > 0
  assert v["frames"] < 24 and v["frames"] + v["damaged"] == 24
  assert v["damaged_frames"] == [[v["frames"], 23]]


# Imports a core install does not have: the `mtcnn` package's weight
# readers, TensorFlow, the extras.
_BLOCKED = ("joblib", "lz4", "mtcnn", "tensorflow", "keras", "torch")
_WITHOUT_EXTRAS = f"""
import runpy, sys
class Blocked:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in {_BLOCKED!r}:
      raise ImportError(f"{{name}} is blocked: not in the core install")
sys.meta_path.insert(0, Blocked())
sys.argv = ["jaxfer.predict", *sys.argv[1:]]
runpy.run_module("jaxfer.predict", run_name="__main__")
"""


@pytest.mark.slow
def test_predict_detects_faces_with_the_core_install_alone(tmp_path):
  """The README's plain install is enough to predict on photos: MTCNN's
  weights ship in the package, and nothing of the extras is imported."""
  lfw = need(LFW)
  person = sorted(p for p in lfw.iterdir() if p.is_dir())[0]
  photo = sorted(person.glob("*.jpg"))[0]
  p = python("-c", _WITHOUT_EXTRAS, "--top=2", photo, cwd=tmp_path)
  assert p.returncode == 0, p.stderr[-3000:]
  (line,) = [x for x in p.stdout.splitlines() if x.startswith(str(photo))]
  classes = "|".join(zoo.load_shipped().class_names)
  pattern = rf" face 1 at x=\d+ y=\d+ w=\d+ h=\d+: ({classes}) 0\.\d+, "
  assert re.search(pattern + rf"({classes}) 0\.\d+$", line), line
