"""`python -m jaxfer.predict` on uncropped photos: faces found by the Haar
cascade in real LFW photos and in a two-face composite, crops with a margin,
photos with no face and unreadable files reported, --no-detect, --json."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import LFW
from conftest import config
from conftest import need
from jaxfer import detect
from jaxfer import zoo
from jaxfer.data import images
from jaxfer.detect import haar as faces
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
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(
    [sys.executable, "-m", "jaxfer.predict", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )


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
