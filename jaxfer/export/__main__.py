"""The command line of `python -m jaxfer.export` (see `jaxfer.export`)."""

import json
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from jaxfer import export
from jaxfer import zoo
from jaxfer.data import images
from jaxfer.data.sources import synthetic


def _define_flags():
  flags.DEFINE_string(
    "workdir", "", "A jaxfer.main workdir (default: the shipped model)."
  )
  flags.DEFINE_string(
    "model", "", "Which evaluated model (default: the first)."
  )
  flags.DEFINE_string("out", None, "The .onnx file to write.", required=True)
  flags.DEFINE_string(
    "faces",
    "",
    "A folder of face images to check the "
    "file on (default: 64 built-in synthetic faces).",
  )
  flags.DEFINE_float("tolerance", 1e-4, "Largest |logit| difference allowed.")
  flags.DEFINE_bool("bench", True, "Also time onnxruntime against jaxfer.")


def faces_for_check(folder: str, channels: int, n: int = 64) -> list:
  """The faces of `folder`, or `n` synthetic faces of several sizes."""
  if folder:
    return [
      images.load_image(f"{folder}/{p}") for p in images.find_images(folder)
    ]
  src = synthetic.SyntheticFaces(n, image_size=64, channels=channels, seed=0)
  out = [np.asarray(src[i]["image"]) for i in range(n)]
  return out + [np.asarray(src[0]["image"])[5:50, 3:60]]  # another size


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  try:
    clf = zoo.load(f.workdir, model=f.model).select(f.model)
    faces = faces_for_check(f.faces, clf.config.data.channels)
    report = export.export(
      clf,
      f.out,
      faces,
      tolerance=f.tolerance,
      source=f.workdir or f"shipped:{clf.name}",
    )
    if f.bench:
      batch = (faces * (256 // len(faces) + 1))[:256]
      report["faces_per_s"] = export.benchmark(clf, f.out, batch)
  except (ImportError, ValueError, FileNotFoundError) as e:
    print(f"jaxfer.export: error: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(report, indent=1))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
