"""What the notebooks share, so that no cell holds library code: the
repository's configs, where FER2013 is, a batch size that fits the devices,
and figures read back from a workdir's files.

The notebooks (`notebooks/*.ipynb`) call the same `train.run`, `omni.run`
and `bench` functions as the command line; this module only finds things
and draws them.
"""

import pathlib
import sys

import numpy as np

from jaxfer import configs
from jaxfer.data import root as data_root

# The repository, as the notebooks' install cell clones it on Colab.
REPO = "https://github.com/jaxfer/jaxfer"
COLAB_CLONE = pathlib.Path("/content/jaxfer")
# Where a FER2013 file is looked for when the notebook names none: the
# data root ($JAXFER_DATA, jaxfer.data.root), then the usual Colab places.
FER2013_NAMES = ("fer2013.csv", "fer2013.csv.bz2", "fer2013.csv.gz")
COLAB_DATA = (pathlib.Path("/content"), pathlib.Path("/content/drive/MyDrive"))


def in_colab() -> bool:
  return "google.colab" in sys.modules


def root() -> pathlib.Path:
  """The repository checkout: the folder holding `configs/` above the
  current folder (a notebook runs in `notebooks/`), else the Colab clone."""
  here = pathlib.Path.cwd().absolute()
  for d in (here, *here.parents):
    if (d / "configs").is_dir() and (d / "jaxfer").is_dir():
      return d
  if (COLAB_CLONE / "configs").is_dir():
    return COLAB_CLONE
  raise FileNotFoundError(
    f"no jaxfer checkout (a folder with configs/ and jaxfer/) at or above "
    f"{here}; run the install cell first, or start Jupyter in the "
    "repository"
  )


def config(name: str, variant: str = ""):
  """`get_config(variant)` of the shipped config `name` (`jaxfer.configs`,
  the CLI's `--config name:variant`)."""
  if name not in configs.names():
    raise FileNotFoundError(f"no config {name!r}; configs: {configs.names()}")
  return configs.load(f"{name}:{variant}")


def _shared_data() -> pathlib.Path:
  return data_root.root()


def fer2013(path: str = "", *, sample: bool = False):
  """The FER2013 CSV to train on, or None (then: the built-in faces).

  `path`, when given, must exist (an error naming it otherwise). Without
  it: with `sample`, the 210-row sample under the data root
  (`$JAXFER_DATA`, `jaxfer.data.root`); else the full file there, then
  `fer2013.csv` in /content or a mounted Drive's MyDrive on Colab. Says
  what it found, or why it found nothing.
  """
  if path:
    p = pathlib.Path(path).expanduser()
    if not p.is_file():
      raise FileNotFoundError(
        f"DATA_PATH={path!r}: no such file. Give the Kaggle fer2013.csv "
        "(or .csv.bz2 / .csv.gz), or leave DATA_PATH empty for the "
        "built-in faces"
      )
    print(f"FER2013: {p}")
    return str(p)
  fer = _shared_data() / "fer2013"
  tried = (
    ([fer / "fer2013_sample_210.csv"] if sample else [])
    + [fer / n for n in ("fer2013.csv.bz2", "fer2013.csv")]
    + [d / n for d in COLAB_DATA for n in FER2013_NAMES]
  )
  for p in tried:
    if p.is_file():
      print(f"FER2013: {p}")
      return str(p)
  print(
    "No FER2013 file found (looked for "
    + ", ".join(str(p) for p in tried)
    + "). Upload the Kaggle "
    "fer2013.csv (Colab: the file panel, or set UPLOAD = True), or "
    "mount Drive and set DATA_PATH. Running on the built-in synthetic "
    "faces instead."
  )
  return None


def upload() -> str:
  """Colab: asks for a file in the browser and returns its path."""
  from google.colab import files  # pylint: disable=g-import-not-at-top

  names = list(files.upload())
  if not names:
    raise FileNotFoundError("no file was uploaded")
  return str(pathlib.Path.cwd() / names[0])


def on_synthetic(c, *, smoke: bool = True):
  """A FER2013 config switched to the built-in synthetic faces (same
  model, method and labeled fraction; splits train / test)."""
  d = c.data
  d.source = "synthetic"
  d.path = ""
  d.train_split, d.eval_splits = "train", ("test",)
  d.mean, d.std = (0.5,), (0.25,)
  d.synthetic.sizes = (
    dict(train=480, test=140) if smoke else dict(train=8000, test=1400)
  )
  if c.checkpoint.best_split:
    c.checkpoint.best_split = "test"
  return c


def fit_batch(c, devices: int = 0):
  """Rounds the config's batch sizes up to a multiple of the device count
  (every device takes an equal share of a global batch); returns the new
  training batch size."""
  if not devices:
    import jax  # pylint: disable=g-import-not-at-top

    devices = jax.device_count()
  up = lambda b: -(-int(b) // devices) * devices
  c.data.batch_size = up(c.data.batch_size)
  c.data.eval_batch_size = up(c.data.eval_batch_size)
  return c.data.batch_size


def devices() -> str:
  """One line on what JAX sees."""
  import jax  # pylint: disable=g-import-not-at-top

  ds = jax.devices()
  kinds = sorted({d.device_kind for d in ds})
  return (
    f"jax {jax.__version__}: {len(ds)} {ds[0].platform} device(s) "
    f"({', '.join(kinds)}), {jax.process_count()} process(es)"
  )


def rows(workdir, split: str = "train", model: str = "") -> list:
  """The rows of `<workdir>/metrics.jsonl` of one split (and model)."""
  from jaxfer.core import report  # pylint: disable=g-import-not-at-top

  return [
    r
    for r in report.read_rows(workdir)
    if r.get("split") == split and (not model or r.get("model") == model)
  ]


def curves(
  runs: dict, keys, *, split: str = "train", model: str = "", title: str = ""
):
  """A pyplot figure with one panel per key: key against step for every
  run (`runs`: label -> workdir, or label -> (workdir, model)). A notebook
  shows it at the end of the cell (assign it: as the cell's value it would
  show twice); elsewhere, `fig.savefig(path)`."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  keys = [keys] if isinstance(keys, str) else list(keys)
  fig, axes = plt.subplots(
    1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False
  )
  for ax, key in zip(axes[0], keys):
    for label, run in runs.items():
      wd, m = run if isinstance(run, tuple) else (run, model)
      rs = [r for r in rows(wd, split, m) if key in r]
      ax.plot(
        [r["step"] for r in rs],
        [r[key] for r in rs],
        label=label,
        marker="o" if len(rs) < 8 else None,
      )
    ax.set_title(f"{split} {key}", fontsize=10)
    ax.set_xlabel("step")
  axes[0][0].legend(fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return fig


def image_grid(images, titles=(), *, cols: int = 8, size: float = 1.3):
  """A pyplot figure of images (HxW or HxWxC, any range: each scaled to its
  own min..max) with a title above each; shown as `curves` is."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  images = [np.asarray(x, np.float32) for x in images]
  n = len(images)
  cols = max(1, min(cols, n))
  rows_ = -(-n // cols)
  fig, axes = plt.subplots(
    rows_, cols, figsize=(size * cols, (size + 0.25) * rows_), squeeze=False
  )
  for i, ax in enumerate(axes.ravel()):
    ax.axis("off")
    if i >= n:
      continue
    x = (
      images[i][..., 0]
      if images[i].ndim == 3 and images[i].shape[-1] == 1
      else images[i]
    )
    lo, hi = float(x.min()), float(x.max())
    ax.imshow((x - lo) / (hi - lo or 1.0), cmap="gray")
    if i < len(titles):
      ax.set_title(str(titles[i]), fontsize=7)
  fig.tight_layout()
  return fig
