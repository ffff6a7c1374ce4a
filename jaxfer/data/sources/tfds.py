"""A prepared TFDS dataset as a source, read through ``tfds.data_source``.

Random access needs the dataset prepared in the ``array_record`` (or
``parquet``) file format; TensorFlow is not needed to read it. Nothing is
downloaded or prepared here: a dataset that is not ready is a DataError.
"""

import numpy as np

from jaxfer.data.base import DataError
from jaxfer.data.base import check_labels

_LABEL_CHUNK = 4096


class TfdsSource:
  """One split of a prepared TFDS dataset, seen as a source.

  Items are ``{"image": uint8[H, W, C], "label": int32}`` (C = 1 or 3; a
  2-D image gets a channel axis, an alpha channel is dropped). With
  ``label_key=None`` it is an unlabeled pool.
  """

  def __init__(
    self,
    name: str,
    *,
    split: str,
    data_dir=None,
    image_key: str = "image",
    label_key: str | None = "label",
  ):
    """Opens the split.

    Args:
      name: the TFDS name, e.g. "mnist" or "mnist:3.0.1".
      split: a TFDS split, e.g. "train" or "train[:90%]".
      data_dir: where the dataset is prepared (TFDS's default if None).
      image_key: the image feature.
      label_key: the `ClassLabel` feature, or None for no labels.
    """
    tfds = _import_tfds()
    self._open_args = dict(
      name=name, split=split, data_dir=data_dir, download=False
    )
    self._data = _open(tfds, self._open_args)
    self.name = f"tfds:{name}[{split}]"
    self.image_key, self.label_key = image_key, label_key
    self.skipped = []
    features = self._data.dataset_info.features
    for key in (image_key, label_key):
      if key is not None and key not in features:
        raise DataError(
          f"{self.name}: no feature {key!r}; features are "
          f"{sorted(features.keys())}"
        )
    if len(self._data) == 0:
      raise DataError(f"{self.name}: no examples")
    self.class_names = self.labels = None
    if label_key is not None:
      names = getattr(features[label_key], "names", None)
      if not names:
        raise DataError(
          f"{self.name}: feature {label_key!r} is not a ClassLabel with names"
        )
      self.class_names = tuple(n.lower() for n in names)
      self.labels = self._read_labels(tfds)
      check_labels(self.labels, len(self.class_names), self.name)

  def __len__(self) -> int:
    return len(self._data)

  def __getitem__(self, i):
    example = self._data[int(i)]
    item = {"image": self._image(example[self.image_key], i)}
    if self.label_key is not None:
      item["label"] = np.int32(example[self.label_key])
    return item

  def _image(self, image, i) -> np.ndarray:
    """Checks an image array and gives it the interface's layout."""
    image = np.asarray(image)
    if image.ndim == 2:
      image = image[..., None]
    if image.dtype != np.uint8 or image.ndim != 3:
      raise DataError(
        f"{self.name}, example {i}, feature "
        f"{self.image_key!r}: {image.dtype}{list(image.shape)} "
        "is not a uint8 image [H, W, C]"
      )
    if image.shape[-1] in (2, 4):  # grey or RGB with alpha
      image = image[..., :-1]
    if image.shape[-1] not in (1, 3):
      raise DataError(
        f"{self.name}, example {i}, feature "
        f"{self.image_key!r}: {image.shape[-1]} channels"
      )
    return image

  def _read_labels(self, tfds) -> np.ndarray:
    """All labels, reading records without decoding their images."""
    undecoded = tfds.data_source(
      **self._open_args, decoders={self.image_key: tfds.decode.SkipDecoding()}
    )
    n = len(undecoded)
    try:
      labels = [
        ex[self.label_key]
        for start in range(0, n, _LABEL_CHUNK)
        for ex in undecoded.__getitems__(
          list(range(start, min(start + _LABEL_CHUNK, n)))
        )
      ]
    except (ImportError, TypeError):
      # Under tfds.testing.mock_data without TensorFlow, neither skipping
      # decoding nor batched reads work: decode each example instead.
      labels = [self._data[i][self.label_key] for i in range(n)]
    return np.asarray(labels, np.int64).astype(np.int32)


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
      "TfdsSource needs tensorflow-datasets (pip install tensorflow-datasets)"
    ) from e
  return tfds


def _open(tfds, args):
  """``tfds.data_source(**args)``, with errors that say what to do."""
  name, data_dir = args["name"], args["data_dir"]
  if not isinstance(args["split"], str):
    raise ValueError(f"split must be one string, got {args['split']!r}")
  try:
    return tfds.data_source(**args)
  except tfds.core.DatasetNotFoundError as e:
    where = data_dir or "TFDS's default data_dir"
    raise DataError(
      f"TFDS knows no dataset {name!r} (not registered, and "
      f"not found in {where})"
    ) from e
  except Exception as e:  # pylint: disable=broad-except
    try:
      builder = tfds.builder(name, data_dir=data_dir)
      prepared, where = builder.is_prepared(), builder.data_dir
    except Exception:  # pylint: disable=broad-except
      prepared, where = False, data_dir
    if not prepared:
      raise DataError(
        f"TFDS dataset {name!r} is not prepared in {where} (data_dir="
        f"{data_dir}); prepare it first, e.g. tfds.builder({name!r}, "
        "data_dir=...).download_and_prepare(file_format='array_record')"
      ) from e
    raise DataError(
      f"TFDS dataset {name!r}, split {args['split']!r}, in "
      f"{where}: {type(e).__name__}: {e}"
    ) from e
