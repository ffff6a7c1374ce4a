"""Models that ship inside the package, and the trained models of workdirs,
behind one loader for inference.

  from jaxfer import zoo
  m = zoo.load()                           # the shipped FER2013 model
  probs = m.probabilities(faces)           # uint8 HWC face crops, any size
  m = zoo.load(workdir="/tmp/jaxfer/run")  # a model you trained

A shipped model is two files in this folder: `<name>.msgpack` (the
evaluation variables, Flax msgpack) and `<name>.json` (the training config,
class names, preprocessing, its metrics and the command that made it).
Both are checked against the SHA-256 digests written in this module when
they load: a damaged or altered file is an `IntegrityError` naming it.
`python -m jaxfer.zoo --workdir DIR --name NAME` writes a new pair and
prints the digests to paste into `SHA256`.
"""

import dataclasses
import functools
import hashlib
import json
import pathlib

from flax import serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxfer import models
from jaxfer.core import defaults
from jaxfer.core import provenance
from jaxfer.data import views
from jaxfer.loop import restore

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT = "fer2013_vgg"
# The digests of the shipped files; a file that does not match is refused.
SHA256 = {
  "fer2013_vgg.json": "a3d982e2bebf1b60cf007f5c8bf6a84b3409573dcd8032f32e64f5fd92141401",
  "fer2013_vgg.msgpack": "90b66aaa24ea483a8bd0b41c57499509f75a325ba5204dde7db47ff24941575d",
}


# The terms under which FER2013-trained weights are shared (on the card).
TERMS = (
  "Trained on FER2013 (Goodfellow et al., 'Challenges in Representation "
  "Learning: A report on three machine learning contests', 2013), the data "
  "of the ICML 2013 facial expression recognition challenge distributed "
  "through Kaggle. FER2013 carries no explicit licence: its faces were "
  "gathered by web image search, and its use is governed by the terms "
  "accepted to download it. The weights are shared for research and "
  "evaluation, without warranty and without any claim over the training "
  "images; jaxfer's code is Apache-2.0. Whoever deploys them checks that "
  "the use agrees with the dataset's terms and with the privacy law that "
  "applies to the faces processed. An expression classifier reports how a "
  "face looks, not what a person feels: do not use it to make decisions "
  "about people."
)


class IntegrityError(ValueError):
  """A shipped model file whose bytes are not the ones released."""


@dataclasses.dataclass(frozen=True)
class Model:
  """A trained classifier ready for inference.

  config: the training config (its `data` fields give the preprocessing);
  class_names: the output classes, in logit order; variables: {name:
  Flax variables} of the evaluated models (e.g. "model", "ema"), the first
  used by `probabilities`; apply: (variables, images) -> (logits, ...);
  card: what is known of it (the shipped model's metrics and command; a
  workdir's run metadata).
  """

  name: str
  config: ml_collections.ConfigDict
  class_names: tuple[str, ...]
  variables: dict
  apply: object
  card: dict

  def select(self, model: str = "") -> "Model":
    """The same classifier with only the evaluated model `model` (default:
    the first); a ValueError names the others."""
    name = model or next(iter(self.variables))
    if name not in self.variables:
      raise ValueError(f"model {name!r} is not one of {sorted(self.variables)}")
    return dataclasses.replace(self, variables={name: self.variables[name]})

  def pixels(self, image: np.ndarray) -> np.ndarray:
    """uint8 [size, size, C] of one uint8 HWC image: its channels and size
    as the model takes them (`jaxfer.data.views.eval_pixels`)."""
    d = self.config.data
    return views.eval_pixels(image, size=d.image_size, channels=d.channels)

  def preprocess(self, image: np.ndarray) -> np.ndarray:
    """float32 [h, w, C] model input of one uint8 HWC image (any size):
    `pixels`, then normalised (`jaxfer.data.views.eval_view`)."""
    d = self.config.data
    return views.eval_view(
      {"image": image},
      size=d.image_size,
      channels=d.channels,
      mean=tuple(d.mean),
      std=tuple(d.std),
    )["image"]

  @functools.cached_property
  def _probs(self):
    apply = self.apply
    return jax.jit(lambda v, x: jax.nn.softmax(apply(v, x)[0]))

  def probabilities(
    self, images: list[np.ndarray], batch_size: int = 64
  ) -> np.ndarray:
    """float [N, C] class probabilities of uint8 HWC face crops, in
    fixed-size batches (the last padded: one compilation)."""
    variables = next(iter(self.variables.values()))
    out = []
    for i in range(0, len(images), batch_size):
      x = np.stack([self.preprocess(im) for im in images[i : i + batch_size]])
      n = len(x)
      x = np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)])
      out.append(np.asarray(self._probs(variables, x))[:n])
    if not out:
      return np.zeros((0, len(self.class_names)), np.float32)
    return np.concatenate(out)


def sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _verified(path: pathlib.Path, digests: dict) -> bytes:
  if not path.exists():
    raise FileNotFoundError(
      f"{path}: a shipped model file is missing (reinstall jaxfer)"
    )
  data = path.read_bytes()
  want = digests.get(path.name)
  got = hashlib.sha256(data).hexdigest()
  if want is None:
    raise IntegrityError(
      f"{path}: no released SHA-256 for this file in jaxfer.zoo.SHA256"
    )
  if got != want:
    raise IntegrityError(
      f"{path}: SHA-256 {got[:16]}... is not the "
      f"released {want[:16]}...: the file is damaged or "
      "altered (reinstall jaxfer)"
    )
  return data


def _apply(config):
  """The evaluation forward of the config's network (no method built)."""
  return models.eval_apply(models.build(config.model, config.data.num_classes))


def load_shipped(
  name: str = DEFAULT,
  *,
  folder: pathlib.Path = HERE,
  digests: dict | None = None,
) -> Model:
  """The shipped model `name`, its files checked against `digests`
  (default: `SHA256`)."""
  digests = SHA256 if digests is None else digests
  folder = pathlib.Path(folder)
  if not (folder / f"{name}.json").exists() and folder == HERE:
    known = sorted(p.stem for p in HERE.glob("*.json"))
    raise FileNotFoundError(
      f"no shipped model {name!r} in {HERE} (shipped: "
      f"{', '.join(known) or 'none'})"
    )
  card = json.loads(_verified(folder / f"{name}.json", digests))
  raw = serialization.msgpack_restore(
    _verified(folder / f"{name}.msgpack", digests)
  )
  config = defaults.from_json(card.pop("config"))
  variables = jax.tree.map(jnp.asarray, raw)
  return Model(
    name,
    config,
    tuple(card["class_names"]),
    {card["model"]: variables},
    _apply(config),
    card,
  )


def load_workdir(workdir: str, *, best: bool = True) -> Model:
  """The evaluated models of a jaxfer.main workdir (best checkpoint, or
  the latest)."""
  config, meta, method, state = restore.load(workdir, best=best)
  return Model(
    str(workdir),
    config,
    tuple(meta["class_names"]),
    method.eval_variables(state),
    _apply(config),
    dict(meta),
  )


def load(workdir: str = "", *, best: bool = True, model: str = "") -> Model:
  """A workdir's models (`model`: one of them), or the shipped default
  when `workdir` is empty."""
  m = load_workdir(workdir, best=best) if workdir else load_shipped()
  return m.select(model) if model else m


def preprocessing(config) -> dict:
  """The input a model expects, in words and numbers (for the card)."""
  d = config.data
  return {
    "channels": d.channels,
    "size": d.image_size,
    "resize": "Pillow bilinear (antialiased) to size x size",
    "colour": (
      "grey: ITU-R 601-2 integer luma of RGB (Pillow's 'L')"
      if d.channels == 1
      else "RGB (grey repeated)"
    ),
    "scale": "x / 255",
    "mean": list(d.mean),
    "std": list(d.std),
    "input": "(x / 255 - mean) / std, float32 [N, size, size, channels]",
  }


def write(
  workdir: str,
  name: str,
  *,
  model: str,
  folder: pathlib.Path,
  metrics: dict,
  best: bool = True,
) -> dict:
  """Writes `<name>.msgpack` and `<name>.json` of one evaluated model of
  a workdir into `folder`; returns their SHA-256 digests. The card's
  command and code version are the workdir's record from the run's start
  (`jaxfer.core.provenance`)."""
  started = provenance.read(workdir)
  config, meta, method, state = restore.load(workdir, best=best)
  variables = method.eval_variables(state)
  if model not in variables:
    raise ValueError(f"model {model!r} is not one of {sorted(variables)}")
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  weights = jax.tree.map(np.asarray, variables[model])
  (folder / f"{name}.msgpack").write_bytes(
    serialization.msgpack_serialize(weights)
  )
  n_params = sum(
    int(np.size(p)) for p in jax.tree.leaves(weights.get("params", weights))
  )
  card = {
    "name": name,
    "model": model,
    "class_names": list(meta["class_names"]),
    "parameters": n_params,
    "preprocessing": preprocessing(config),
    "metrics": metrics,
    "command": started["command"],
    "started": {k: started[k] for k in ("cwd", "code", "started")},
    "terms": TERMS,
    "config": config.to_dict(),
  }
  (folder / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
  return {p: sha256(folder / p) for p in (f"{name}.json", f"{name}.msgpack")}
