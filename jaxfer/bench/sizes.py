r"""`python -m jaxfer.bench sizes`: MTCNN on a folder of photos of mixed
sizes against one of equal sizes.

  python -m jaxfer.bench sizes --lfw $JAXFER_DATA/lfw --out /tmp/sizes.json

The first photo of each of the first `--photos` LFW people (250x250, the
face at the centre), saved twice as JPEG: scaled by a random factor in
[0.8, 3.2) and centre-cropped to a random 60-100% of each side (seed 0:
sides of 120 to 800 pixels, the face undistorted), and all scaled to
500x500. Each folder is detected in a fresh process (so each
pays its own compilations, as a user's first run does): photos/s over
reading and detecting every photo, and faces found. A folder of mixed
sizes compiles P-Net for about as many padded shapes as one photo's
pyramid (`jaxfer.detect.mtcnn.padded_side`), so the two rates stay close.
"""

import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

# The child: detect every photo of a folder, print the figures.
_CHILD = """
import json, pathlib, sys, time
import numpy as np
from PIL import Image
from jaxfer.detect import mtcnn
mtcnn.load_weights()
paths = sorted(pathlib.Path(sys.argv[1]).glob("*.jpg"))
t = time.perf_counter()
rgb = lambda p: np.asarray(Image.open(p).convert("RGB"))
faces = sum(len(mtcnn.detect(rgb(p))[0]) for p in paths)
s = time.perf_counter() - t
print("RESULT" + json.dumps(dict(photos=len(paths), faces=faces, seconds=s)))
"""


def write_folders(lfw: str, photos: int, root: pathlib.Path) -> dict:
  """{"mixed" | "equal": folder} of `photos` LFW photos each."""
  people = sorted(p for p in pathlib.Path(lfw).iterdir() if p.is_dir())
  rng = np.random.default_rng(0)
  out = {k: root / k for k in ("mixed", "equal")}
  for folder in out.values():
    folder.mkdir()
  for i, person in enumerate(people[:photos]):
    img = Image.open(sorted(person.glob("*.jpg"))[0]).convert("RGB")
    side = int(250 * rng.uniform(0.8, 3.2))
    w, h = (int(side * f) for f in rng.uniform(0.6, 1.0, 2))
    big = img.resize((side, side))
    box = ((side - w) // 2, (side - h) // 2, (side + w) // 2, (side + h) // 2)
    big.crop(box).save(out["mixed"] / f"{i:03d}.jpg", quality=95)
    img.resize((500, 500)).save(out["equal"] / f"{i:03d}.jpg", quality=95)
  return out


def detect_folder(folder: pathlib.Path) -> dict:
  p = subprocess.run(
    [sys.executable, "-c", _CHILD, str(folder)],
    capture_output=True,
    text=True,
    check=False,
  )
  if p.returncode:
    raise RuntimeError(f"detecting {folder} failed:\n{p.stderr[-3000:]}")
  row = json.loads(p.stdout.split("RESULT")[1])
  row["photos_per_s"] = row["photos"] / row["seconds"]
  return row


def run(lfw: str, photos: int = 40) -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    folders = write_folders(lfw, photos, pathlib.Path(tmp))
    out = {k: detect_folder(f) for k, f in folders.items()}
  out["equal_over_mixed"] = (
    out["equal"]["photos_per_s"] / out["mixed"]["photos_per_s"]
  )
  print(table(out))
  return out


def table(out: dict) -> str:
  lines = [
    "| folder | photos | faces found | photos/s (compilations included) |",
    "| --- | --- | --- | --- |",
  ]
  for k, what in (("equal", "500x500"), ("mixed", "120-800 px sides")):
    r = out[k]
    lines.append(
      f"| {what} | {r['photos']} | {r['faces']} | {r['photos_per_s']:.2f} |"
    )
  lines.append(f"\nequal / mixed: {out['equal_over_mixed']:.2f}x")
  return "\n".join(lines)
