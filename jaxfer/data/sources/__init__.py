"""The datasets, one module each, every one a random-access source
(`jaxfer.data.base`): FER2013 and FER+, file-based sets (image folders,
labeled CSVs, RAF-DB, AffectNet), Aff-Wild2, MS-Celeb-1M's TSV, TFDS, the
synthetic faces, and the distilled and mined sets jaxfer writes.

`REGISTRY` maps a config's `source` to a factory `(cfg, split) -> source`
that reads the section's fields (`jaxfer.core.defaults.source`); `make` is
what every caller uses.
"""

import os

from jaxfer.data import labels as labels_lib
from jaxfer.data import root as data_root
from jaxfer.data.base import DataError
from jaxfer.data.sources import affwild2
from jaxfer.data.sources import distilled
from jaxfer.data.sources import fer2013
from jaxfer.data.sources import files
from jaxfer.data.sources import mined
from jaxfer.data.sources import msceleb
from jaxfer.data.sources import synthetic
from jaxfer.data.sources import tfds


def _path(cfg) -> str:
  """The section's path read under the data root (`jaxfer.data.root`); a
  file or folder that does not exist is an error saying where to get it."""
  if not cfg.path:
    raise ValueError(
      f"config.data.path must name the {cfg.source} data "
      f"(--config.data.path=...)"
    )
  path = data_root.resolve(cfg.path)
  if "{split}" not in path and not os.path.exists(path):
    raise DataError(data_root.missing(cfg.source, cfg.path, "path"))
  return path


def _split_path(cfg, split: str, suffix: str = "") -> str:
  """A folder dataset's split: ``{split}`` in the path, else a subfolder
  (or ``<path>/<split>.csv``)."""
  path = _path(cfg)
  if "{split}" in path:
    return path.format(split=split)
  return os.path.join(path, split + suffix)


def _synthetic(cfg, split):
  sizes = cfg.synthetic.sizes
  if split not in sizes:
    raise ValueError(
      f"synthetic split {split!r} is not one of "
      f"{sorted(sizes)} (config.data.synthetic.sizes)"
    )
  return synthetic.SyntheticFaces(
    sizes[split],
    image_size=cfg.image_size,
    channels=cfg.channels,
    seed=cfg.synthetic.seed * 1000 + sorted(sizes).index(split),
    name=f"synthetic[{split}]",
  )


def _fer2013(cfg, split):
  cache = os.path.expanduser(cfg.cache_dir) if cfg.cache_dir else None
  return fer2013.fer2013(
    _path(cfg),
    split=split,
    ferplus=cfg.ferplus or None,
    on_bad=cfg.on_bad,
    drop_blank=cfg.drop_blank,
    cache_dir=cache,
  )


REGISTRY = {
  "synthetic": _synthetic,
  "fer2013": _fer2013,
  "rafdb": lambda cfg, split: files.RafDB(
    _path(cfg), split=split, on_bad=cfg.on_bad
  ),
  "affectnet": lambda cfg, split: files.AffectNet(
    _path(cfg), split=split, num_classes=cfg.num_classes, on_bad=cfg.on_bad
  ),
  "image_folder": lambda cfg, split: files.ImageFolder(
    _split_path(cfg, split), on_bad=cfg.on_bad
  ),
  "labeled_csv": lambda cfg, split: files.LabeledCSV(
    _split_path(cfg, split, ".csv"),
    class_names=labels_lib.class_names(cfg.class_table),
    on_bad=cfg.on_bad,
  ),
  "unlabeled_folder": lambda cfg, split: files.UnlabeledFolder(
    _path(cfg), on_bad=cfg.on_bad
  ),
  "affwild2": lambda cfg, split: affwild2.AffWild2(
    _path(cfg),
    split=split,
    frames=cfg.affwild2.frames,
    every=cfg.affwild2.every,
    on_bad=cfg.on_bad,
  ),
  "distilled": lambda cfg, split: distilled.load(_path(cfg)),
  "mined": lambda cfg, split: mined.load(_path(cfg)),
  "msceleb_tsv": lambda cfg, split: msceleb.MsCelebTSV(
    _path(cfg), on_bad=cfg.on_bad, index_path=cfg.msceleb_index or None
  ),
  "tfds": lambda cfg, split: tfds.TfdsSource(
    cfg.tfds_name, split=split, data_dir=cfg.path or None
  ),
}


def make(cfg, split: str):
  """The source `cfg.source` names, for `split` (in that dataset's own
  terms).

  Args:
    cfg: a dataset section (`config.data`, a pool, a cross_eval entry).
    split: the split.
  """
  if cfg.source not in REGISTRY:
    raise ValueError(
      f"config.data.source {cfg.source!r} is not one of {', '.join(REGISTRY)}"
    )
  return REGISTRY[cfg.source](cfg, split)
