r"""Prints the top classes of a trained model for image files.

  python -m jaxfer.predict --workdir /tmp/jaxfer/default face1.png face2.jpg

Uses the best checkpoint of the workdir (or the latest with --nobest), the
config saved with it, and the evaluation preprocessing of that config.
"""

import functools
import sys

from absl import app
from absl import logging
from absl import flags
import jax
import numpy as np
from PIL import Image

from jaxfer import restore
from jaxfer.data import views

flags.DEFINE_string("workdir", None, "A workdir written by jaxfer.main.")
flags.DEFINE_bool("best", True, "Use the best checkpoint, else the latest.")
flags.DEFINE_integer("top", 3, "How many classes to print per image.")
flags.DEFINE_string("model", "", "Which evaluated model (default: the first, "
                    "e.g. 'model', 'ema', 'student').")


load = restore.load   # (config, meta, method, state) of a workdir


def read_image(path: str) -> np.ndarray:
  try:
    with Image.open(path) as im:
      im = im.convert("L" if im.mode in ("L", "I", "I;16", "1") else "RGB")
      arr = np.asarray(im)
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read image {path}: {e}") from None
  return arr[..., None] if arr.ndim == 2 else arr


def predict(config, method, variables, images: list[np.ndarray]):
  """Class probabilities [N, C] for uint8 HWC images."""
  view = functools.partial(views.eval_view, size=config.data.image_size,
                           channels=config.data.channels,
                           mean=tuple(config.data.mean),
                           std=tuple(config.data.std))
  x = np.stack([view({"image": im})["image"] for im in images])
  logits, _ = jax.jit(method.apply)(variables, x)
  return np.asarray(jax.nn.softmax(logits))


def main(argv):
  if not flags.FLAGS["verbosity"].present:   # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  paths = argv[1:]
  if not flags.FLAGS.workdir or not paths:
    raise app.UsageError("usage: python -m jaxfer.predict --workdir DIR "
                         "IMAGE...")
  try:
    config, meta, method, state = restore.load(flags.FLAGS.workdir,
                                               best=flags.FLAGS.best)
    images = [read_image(p) for p in paths]
  except (ValueError, FileNotFoundError) as e:
    print(f"jaxfer.predict: error: {e}", file=sys.stderr)
    sys.exit(1)
  try:
    _, variables = restore.eval_model(method, state, flags.FLAGS.model)
  except ValueError as e:
    print(f"jaxfer.predict: error: --model {e}", file=sys.stderr)
    sys.exit(1)
  probs = predict(config, method, variables, images)
  names = meta["class_names"]
  for path, p in zip(paths, probs):
    top = np.argsort(-p)[:flags.FLAGS.top]
    print(path + ": " + ", ".join(f"{names[i]} {p[i]:.3f}" for i in top))


if __name__ == "__main__":
  app.run(main)
