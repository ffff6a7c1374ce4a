"""Config building blocks the configs share: FER2013's data fields, the
ConvNet-4 of the FER2013 tables, the VGG of the shipped model and their
seconds-long sizes for the smoke variants. Fields: `defaults.py`."""

# The 210-row sample CSV (10 rows per Usage and emotion) of the smoke
# variants, relative to the repository.
FER2013_SAMPLE = "../shared/data/fer2013/fer2013_sample_210.csv"


def fer2013(data) -> None:
  """FER2013 in its Kaggle CSV on `data` (a `config.data` section): its
  splits (train on Training, evaluate PublicTest and PrivateTest) and its
  grey-level mean and std (of the Training images)."""
  data.source = "fer2013"
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
  """Shrinks `model` (a `config.model` of `convnet4()` or `vgg()`) to a
  seconds-long size for the `:smoke` variants."""
  if model.name == "vgg":
    model.stages = (8, 16)
  else:
    model.width = 8
