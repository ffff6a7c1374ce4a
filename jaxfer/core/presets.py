"""Config building blocks the configs share: FER2013's data fields and its
semi-supervised protocol, LFW as a pool, the ConvNet-4 of the FER2013
tables, the VGG of the shipped model and the seconds-long `:smoke` form.
Fields: `defaults.py`."""

import pathlib

from jaxfer.core import defaults

# The datasets under the data root ($JAXFER_DATA: `jaxfer.data.root`; the
# layout: docs, Getting the data). FER2013's CSV may be compressed there
# (fer2013.csv.bz2 or .gz).
FER2013 = "$JAXFER_DATA/fer2013/fer2013.csv"
# The smoke variants' FER2013 file: 210 synthetic faces (10 per Usage and
# emotion) in the Kaggle CSV layout, shipped in the package
# (`jaxfer.data.smoke` writes it; a file path, not an import: core sits
# below data), so `:smoke` runs from any folder with no dataset.
FER2013_SMOKE = str(
  pathlib.Path(__file__).resolve().parents[1]
  / "data"
  / "fer2013_smoke_210.csv.bz2"
)
LFW = "$JAXFER_DATA/lfw"


def fer2013(data) -> None:
  """FER2013 in its Kaggle CSV on `data` (a `config.data` section): its
  splits (train on Training, evaluate PublicTest and PrivateTest) and its
  grey-level mean and std (of the Training images)."""
  data.source = "fer2013"
  data.path = FER2013
  data.train_split = "Training"
  data.eval_splits = ("PublicTest", "PrivateTest")
  data.mean, data.std = (0.508,), (0.255,)


def convnet4() -> dict:
  """ConvNet-4 (width 64, BatchNorm, 0.12 M parameters): the network of
  the FER2013 semi-supervised tables."""
  return dict(name="convnet", depth=4, width=64, norm="batch", dtype="float32")


def vgg() -> dict:
  """The VGG of the shipped model (four stages of two 3x3 convolutions,
  32-64-128-256 channels, BatchNorm, 1.17 M parameters)."""
  return dict(
    name="vgg",
    stages=(32, 64, 128, 256),
    convs=2,
    norm="batch",
    dtype="float32",
  )


def smoke_sized(model) -> None:
  """Shrinks `model` (a `config.model`: `convnet4()`, `vgg()` or a ResNet)
  to a seconds-long size for the `:smoke` variants, in float32."""
  if model.name == "vgg":
    model.stages = (8, 16)
  elif model.name == "resnet":
    model.stages, model.width = (1,), 4
  else:
    model.width = 8
  model.dtype = "float32"


def rgb_faces(c, method: str, source: str, *, size, mean, std, padding):
  """`method` on the RGB face dataset `source` (a `config.data.source`) at
  `size` x `size`, labeled and unlabeled alike, with its channel `mean` and
  `std` and random crops of `padding` pixels, mu 7 (the Face2Exp and DTM
  protocols)."""
  c.method = method
  c.mu = 7
  c.data.source = source
  c.data.image_size = c.data.unlabeled.image_size = size
  c.data.channels = c.data.unlabeled.channels = 3
  c.data.mean, c.data.std = mean, std
  c.data.crop_padding = padding


def smoke_rgb(c, size: int) -> None:
  """The seconds-long `:smoke` form of an RGB config `c`: images of `size`,
  batch 4, mu 2, 4 steps, the network shrunk by `smoke_sized`."""
  smoke_sized(c.model)
  c.data.image_size = c.data.unlabeled.image_size = size
  c.data.batch_size, c.mu, c.total_steps = 4, 2, 4


def schedule(c, steps, *, log, every, checkpoint=None, best=None) -> None:
  """`steps` steps of `c` with a log line every `log`, an evaluation every
  `every` and a checkpoint every `checkpoint` (default: `every`); `best`, a
  (split, metric) pair or a split, chooses the best checkpoint."""
  c.total_steps, c.log_every, c.eval_every = steps, log, every
  c.checkpoint.every = every if checkpoint is None else checkpoint
  if best is not None:
    split, metric = (best, None) if isinstance(best, str) else best
    c.checkpoint.best_split = split
    if metric is not None:
      c.checkpoint.best_metric = metric


def smoke(c, *, steps: int = 6) -> None:
  """The seconds-long `:smoke` form of a FER2013 config `c`: the shipped
  210 synthetic faces in FER2013's CSV (no parse cache), `steps` steps with a log every 2 and an
  evaluation and checkpoint every half, batches of 8 (32 to evaluate) and
  the network shrunk by `smoke_sized`."""
  c.data.path = FER2013_SMOKE
  c.data.cache_dir = ""
  schedule(c, steps, log=2, every=steps // 2)
  c.data.batch_size, c.data.eval_batch_size = 8, 32
  smoke_sized(c.model)


def fer2013_semi(c, method: str, *, use_vgg: bool) -> None:
  """The FER2013 semi-supervised protocol of `c` (a `defaults.base()`):
  `method`, the 10% class-balanced labeled subset with the rest of
  Training as the pool (mu 1), batch 64 + 64, ConvNet-4 (or, `use_vgg`, the
  shipped model's VGG), 1,000 steps of SGD-Nesterov lr 0.05 with 100
  warm-up steps, checkpoints chosen on PublicTest."""
  c.method = method
  c.mu = 1
  fer2013(c.data)
  c.data.labeled_fraction = 0.1
  c.data.batch_size = 64
  c.model = vgg() if use_vgg else convnet4()
  c.total_steps = 1000
  c.optimizer.lr = 0.05
  c.optimizer.warmup_steps = 100
  c.checkpoint.best_split = "PublicTest"


# The variants that the FER2013 semi-supervised configs share.
SEMI_VARIANTS = {
  "lfw": "LFW as the unlabeled pool",
  "tpu": "sized for a TPU v2-8 / v3-8 (on paper)",
  "vgg": "the shipped model's VGG instead of ConvNet-4",
}


def semi_variants(c, v) -> None:
  """Applies the chosen `v` of `SEMI_VARIANTS` and `smoke` (with half of
  the sample labeled) to a `fer2013_semi` config `c`; `vgg` is
  `fer2013_semi`'s. Call it after the config's own fields."""
  if "lfw" in v:
    lfw_pool(c.data.unlabeled)
  if "tpu" in v:  # sized on paper: defaults.tpu_sized
    defaults.tpu_sized(c)
  if "smoke" in v:
    smoke(c)
    c.data.labeled_fraction = 0.5


def lfw_pool(pool) -> None:
  """LFW (13,233 faces of 5,749 people, no expression labels) as the
  unlabeled pool `pool`, its loose 250x250 crops cut to the central half."""
  pool.source = "unlabeled_folder"
  pool.path = LFW
  pool.center_crop = 0.5
