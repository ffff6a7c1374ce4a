r"""A trained model as ONNX, checked by onnxruntime before it is kept.

  python -m jaxfer.export --out fer2013_vgg.onnx            # the shipped model
  python -m jaxfer.export --workdir /tmp/jaxfer/run --model ema --out m.onnx

The route is jax2onnx: it converts the jitted forward's jaxpr (the same
function `jaxfer.evaluate` runs) op by op to ONNX (Conv, BatchNormalization,
Relu, MaxPool, ReduceMean, Gemm for the VGG), with a dynamic batch axis;
no TensorFlow, no second model definition to keep in step. The graph takes
the faces as `pixels`, float32 [N, size, size, C] in 0..255 after the
model's own resize and channel conversion (`jaxfer.data.views.
eval_pixels`), normalises them itself, and gives `logits` and
`probabilities`. The file's metadata holds the class names, the
preprocessing (`jaxfer.zoo.preprocessing`) and where the model came from.

After writing, onnxruntime runs the file on faces and its logits are
compared with jaxfer's on the same faces: a largest difference above
`tolerance` (1e-4) deletes the file and raises `ExportMismatch`, never a
silent file. `benchmark` times both on the same batch.
"""

import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import zoo

INSTALL = "pip install 'jaxfer[export]' (jax2onnx, onnxruntime)"


class ExportMismatch(ValueError):
  """onnxruntime's logits differ from jaxfer's on the same faces."""


def _need():
  try:
    import jax2onnx  # pylint: disable=g-import-not-at-top
    import onnxruntime  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"exporting to ONNX needs {INSTALL} ({e})") from e
  return jax2onnx, onnxruntime


def graph_fn(clf):
  """pixels (float32 0..255, [N, h, w, C]) -> (logits, probabilities) of
  the classifier's first model, normalisation included."""
  (variables,) = clf.select().variables.values()
  d = clf.config.data
  mean = jnp.asarray(d.mean, jnp.float32)
  std = jnp.asarray(d.std, jnp.float32)

  def fn(pixels):
    x = (pixels / 255.0 - mean) / std
    logits = clf.apply(variables, x)[0]
    return logits, jax.nn.softmax(logits)

  return fn


def metadata(clf, source: str) -> dict:
  return {
    "jaxfer_model": clf.name,
    "source": source,
    "class_names": json.dumps(list(clf.class_names)),
    "preprocessing": json.dumps(
      {
        **zoo.preprocessing(clf.config),
        "onnx_input": "pixels: float32 [N, size, size, channels] in 0..255 "
        "after the channel conversion and the resize; the graph normalises",
      }
    ),
  }


def session(path: str):
  _, ort = _need()
  return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export(
  clf,
  out: str,
  faces: list[np.ndarray],
  *,
  source: str = "",
  tolerance: float = 1e-4,
) -> dict:
  """Writes `clf` (a `jaxfer.zoo.Model`) to `out` as ONNX and checks it on
  `faces` (uint8 HWC, any size); returns the check's figures."""
  jax2onnx, _ = _need()
  d = clf.config.data
  fn = graph_fn(clf)
  proto = jax2onnx.to_onnx(
    fn,
    [("N", d.image_size, d.image_size, d.channels)],
    model_name=clf.name.replace("/", "_") or "jaxfer",
    input_names=["pixels"],
    output_names=["logits", "probabilities"],
  )
  del proto.graph.value_info[:]  # jax2onnx's NHWC shape hints mislead ORT
  for k, v in metadata(clf, source).items():
    proto.metadata_props.add(key=k, value=v)
  out = pathlib.Path(out)
  out.write_bytes(proto.SerializeToString())
  try:
    diff = check(clf, out, faces, tolerance=tolerance)
  except ExportMismatch:
    out.unlink(missing_ok=True)
    raise
  return {
    "path": str(out),
    "bytes": out.stat().st_size,
    "max_abs_logit_diff": diff,
    "faces_checked": len(faces),
  }


def check(clf, path, faces, *, tolerance: float = 1e-4) -> float:
  """Largest |logit| difference between onnxruntime and jaxfer on the
  same faces; above `tolerance` an ExportMismatch naming the file."""
  pixels = np.stack([clf.pixels(f) for f in faces]).astype(np.float32)
  got = session(path).run(["logits"], {"pixels": pixels})[0]
  want = np.asarray(
    clf.apply(
      next(iter(clf.select().variables.values())),
      np.stack([clf.preprocess(f) for f in faces]),
    )[0]
  )
  diff = float(np.abs(got - want).max())
  if not diff <= tolerance:
    raise ExportMismatch(
      f"{path}: onnxruntime's logits differ from jaxfer's by {diff:.3g} "
      f"(> {tolerance:g}) on {len(faces)} faces; the file was removed"
    )
  return diff


def benchmark(clf, path, faces, rounds: int = 5) -> dict:
  """Faces/s of onnxruntime (the file) and jaxfer (jitted) on the same
  batch, preprocessing excluded, median of `rounds` after a warm-up."""
  pixels = np.stack([clf.pixels(f) for f in faces]).astype(np.float32)
  sess = session(path)
  fn = jax.jit(graph_fn(clf))
  out = {}
  for name, call in (
    ("onnxruntime", lambda: sess.run(["logits"], {"pixels": pixels})),
    ("jaxfer", lambda: jax.block_until_ready(fn(pixels))),
  ):
    call()
    times = []
    for _ in range(rounds):
      t = time.perf_counter()
      call()
      times.append(time.perf_counter() - t)
    out[name] = len(faces) / float(np.median(times))
  out["threads"] = os.cpu_count()
  return out
