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
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from jaxfer import checkpoint as ckpt_lib
from jaxfer import methods
from jaxfer import models
from jaxfer.data import views

flags.DEFINE_string("workdir", None, "A workdir written by jaxfer.main.")
flags.DEFINE_bool("best", True, "Use the best checkpoint, else the latest.")
flags.DEFINE_integer("top", 3, "How many classes to print per image.")
flags.DEFINE_string("model", "", "Which evaluated model (default: the first, "
                    "e.g. 'model', 'ema', 'student').")


def load(workdir: str, *, best: bool = True):
  """(config, meta, method, state) restored from a workdir."""
  config, meta = ckpt_lib.read_config(workdir, best=best)
  config = ml_collections.ConfigDict(config)
  model = models.build(config.model, config.data.num_classes)
  method = methods.build(config, model, config.total_steps,
                         pool_size=meta.get("pool_size", 0))
  size, ch = config.data.image_size, config.data.channels
  state = jax.eval_shape(method.init, jax.random.key(0),
                         jnp.zeros((1, size, size, ch)))
  ckpt = ckpt_lib.Checkpointer(workdir)
  state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)
  state, _, _ = ckpt.restore(state, best=best)
  ckpt.close()
  return config, meta, method, state


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
    config, meta, method, state = load(flags.FLAGS.workdir,
                                       best=flags.FLAGS.best)
    images = [read_image(p) for p in paths]
  except (ValueError, FileNotFoundError) as e:
    print(f"jaxfer.predict: error: {e}", file=sys.stderr)
    sys.exit(1)
  evals = method.eval_variables(state)
  name = flags.FLAGS.model or next(iter(evals))
  if name not in evals:
    print(f"jaxfer.predict: error: --model {name!r} is not one of "
          f"{sorted(evals)}", file=sys.stderr)
    sys.exit(1)
  probs = predict(config, method, evals[name], images)
  names = meta["class_names"]
  for path, p in zip(paths, probs):
    top = np.argsort(-p)[:flags.FLAGS.top]
    print(path + ": " + ", ".join(f"{names[i]} {p[i]:.3f}" for i in top))


if __name__ == "__main__":
  app.run(main)
