"""A distilled set on disk: save, load back as a source, mix into a set.

`save(directory, ...)` writes

* ``distilled.npz``: ``images`` (float32, normalized as trained),
  ``images_uint8`` (the same, de-normalized to pixels), ``labels``,
  ``soft_labels`` (float32 [N, C]), ``lrs`` (the learned inner learning
  rates, if any);
* ``distilled.json``: class names, image size, channels, mean, std, images
  per class, whether the labels were learned, and free-form facts;
* ``distilled_<class>.png``: the images of each class side by side.

`load(directory)` gives an `ArraySource` of the pixel images (with soft
labels when they were learned), so any config can train on it
(``data.source="distilled"``) or mix it into its labeled set
(``data.distilled.path`` and ``ratio``).
"""

import json
import pathlib

import numpy as np
from PIL import Image

from jaxfer.data import transforms
from jaxfer.data.base import ArraySource
from jaxfer.data.base import DataError

_ARRAYS = "distilled.npz"
_META = "distilled.json"


def save(
  directory,
  *,
  images,
  labels,
  soft_labels,
  class_names,
  mean,
  std,
  lrs=None,
  learned_labels: bool = False,
  **facts,
) -> pathlib.Path:
  """Writes a distilled set (see the module doc); returns the directory."""
  d = pathlib.Path(directory)
  d.mkdir(parents=True, exist_ok=True)
  images = np.asarray(images, np.float32)
  pixels = transforms.denormalize(images, mean, std)
  labels = np.asarray(labels, np.int32)
  arrays = dict(
    images=images,
    images_uint8=pixels,
    labels=labels,
    soft_labels=np.asarray(soft_labels, np.float32),
  )
  if lrs is not None:
    arrays["lrs"] = np.asarray(lrs, np.float32)
  tmp = d / (_ARRAYS + ".tmp.npz")
  np.savez(tmp, **arrays)
  tmp.replace(d / _ARRAYS)
  meta = dict(
    class_names=list(class_names),
    image_size=images.shape[1],
    channels=images.shape[-1],
    mean=list(mean),
    std=list(std),
    images_per_class=int(np.bincount(labels).max()),
    learned_labels=bool(learned_labels),
    **facts,
  )
  (d / _META).write_text(json.dumps(meta, indent=2))
  for c, name in enumerate(class_names):
    row = pixels[labels == c]
    if len(row):
      grid = np.concatenate(list(row), axis=1)
      grid = np.kron(grid, np.ones((2, 2, 1), np.uint8))  # 2x for viewing
      Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(
        d / f"distilled_{name}.png"
      )
  return d


def load_arrays(directory) -> tuple[dict, dict]:
  """(arrays, metadata) of a saved distilled set."""
  d = pathlib.Path(directory)
  for name in (_ARRAYS, _META):
    if not (d / name).exists():
      raise DataError(
        f"{d}: no {name}; is it a distilled set written by method 'distill'?"
      )
  with np.load(d / _ARRAYS) as f:
    arrays = {k: f[k] for k in f.files}
  return arrays, json.loads((d / _META).read_text())


def load(directory) -> ArraySource:
  """The distilled set as a labeled source of pixel images."""
  arrays, meta = load_arrays(directory)
  return ArraySource(
    arrays["images_uint8"],
    arrays["labels"],
    tuple(meta["class_names"]),
    name=f"distilled({directory})",
    soft_labels=(arrays["soft_labels"] if meta["learned_labels"] else None),
  )


class Mixed:
  """A labeled source with a small set mixed in at a given share.

  The small set's rows are repeated so that a uniform draw over the result
  picks one of them with probability about `ratio`. Both sides give the same
  keys: one-hot soft labels are added to a side without soft labels when the
  other has them.
  """

  def __init__(self, base, extra, ratio: float):
    if not 0 < ratio < 1:
      raise ValueError(
        f"config.data.distilled.ratio must be in (0, 1), got {ratio}"
      )
    if tuple(base.class_names) != tuple(extra.class_names):
      raise DataError(
        f"{extra.name} has classes {tuple(map(str, extra.class_names))}, "
        f"{base.name} has {tuple(map(str, base.class_names))}"
      )
    self.base, self.extra = base, extra
    self.repeat = max(1, round(ratio / (1 - ratio) * len(base)))
    self.class_names = base.class_names
    self.labels = np.concatenate(
      [
        np.asarray(base.labels),
        np.resize(np.asarray(extra.labels), self.repeat),
      ]
    )
    self.name = f"{base.name}+{extra.name}[{ratio:.0%}]"
    self.skipped = getattr(base, "skipped", [])
    self._soft = (
      getattr(base, "soft_labels", None) is not None
      or getattr(extra, "soft_labels", None) is not None
    )

  def __len__(self) -> int:
    return len(self.base) + self.repeat

  def __getitem__(self, i):
    i = int(i)
    n = len(self.base)
    item = dict(
      self.base[i] if i < n else self.extra[(i - n) % len(self.extra)]
    )
    if self._soft and "soft_label" not in item:
      item["soft_label"] = np.eye(len(self.class_names), dtype=np.float32)[
        item["label"]
      ]
    return item
