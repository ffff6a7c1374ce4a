"""The `:smoke` variants' FER2013 file, shipped in the package: 210
synthetic faces (`jaxfer.data.sources.synthetic`, 48x48 grey) in the
Kaggle CSV layout, 10 per Usage and emotion like the real 210-row sample,
so that every FER2013 config's `:smoke` variant runs from any folder with
no dataset downloaded. Written by ``python -m jaxfer.data.smoke`` (a test
checks that the shipped file is what this module writes).
"""

import bz2
import pathlib

import numpy as np

from jaxfer.data.sources import synthetic

PATH = pathlib.Path(__file__).with_name("fer2013_smoke_210.csv.bz2")
USAGES = ("Training", "PublicTest", "PrivateTest")


def csv_text(per: int = 10, seed: int = 0) -> str:
  """`per` faces of each emotion for each Usage, as the Kaggle CSV's
  ``emotion,pixels,Usage`` rows."""
  need = per * len(USAGES)
  src = synthetic.SyntheticFaces(40 * need, seed=seed, name="smoke sample")
  by_class = {k: [] for k in range(7)}
  for i in range(len(src)):
    label = int(src.labels[i])
    if len(by_class[label]) < need:
      by_class[label].append(src[i]["image"])
    if all(len(v) == need for v in by_class.values()):
      break
  rows = ["emotion,pixels,Usage"]
  for u, usage in enumerate(USAGES):
    for label, images in by_class.items():
      for image in images[u * per : (u + 1) * per]:
        pixels = " ".join(map(str, np.asarray(image).reshape(-1)))
        rows.append(f"{label},{pixels},{usage}")
  return "\n".join(rows) + "\n"


def write(path=PATH) -> pathlib.Path:
  path = pathlib.Path(path)
  path.write_bytes(bz2.compress(csv_text().encode(), 9))
  return path


if __name__ == "__main__":
  print(write())
