"""Builds the sources and Grain streams a config asks for.

`config.data.source` names the labeled dataset; `config.data.path` is its
file or folder (for folder datasets with splits, ``{split}`` in the path is
replaced by the split name, otherwise the split is a subfolder or, for
``labeled_csv``, ``<path>/<split>.csv``). `config.data.unlabeled` names the
unlabeled pool of semi-supervised methods.
"""

import dataclasses
import functools
import os
from collections.abc import Callable

import numpy as np

from jaxfer.data import fer2013
from jaxfer.data import labels as labels_lib
from jaxfer.data import pipeline
from jaxfer.data import sources
from jaxfer.data import views


def _split_path(path: str, split: str, suffix: str = "") -> str:
  if "{split}" in path:
    return path.format(split=split)
  return os.path.join(path, split + suffix)


def _need_path(cfg, kind: str) -> str:
  if not cfg.get("path"):
    raise ValueError(f"config.data.path must name the {kind} data "
                     f"(--config.data.path=...)")
  return os.path.expanduser(cfg.path)


def make_source(cfg, split: str):
  """The labeled (or, for `unlabeled_folder`, unlabeled) source of a split.

  Args:
    cfg: a data config: source, path, on_bad and the source's own fields.
    split: the split name in that dataset's own terms.
  """
  kind = cfg.source
  on_bad = cfg.get("on_bad", "error")
  if kind == "synthetic":
    from jaxfer.data import synthetic  # pylint: disable=g-import-not-at-top
    sizes = cfg.synthetic.sizes
    if split not in sizes:
      raise ValueError(f"synthetic split {split!r} is not one of "
                       f"{sorted(sizes)} (config.data.synthetic.sizes)")
    return synthetic.SyntheticFaces(
        sizes[split], image_size=cfg.image_size, channels=cfg.channels,
        seed=cfg.synthetic.seed * 1000 + sorted(sizes).index(split),
        name=f"synthetic[{split}]")
  if kind == "fer2013":
    cache = cfg.get("cache_dir") or None
    return fer2013.fer2013(
        _need_path(cfg, kind), split=split, ferplus=cfg.get("ferplus") or None,
        on_bad=on_bad, drop_blank=cfg.get("drop_blank", False),
        cache_dir=os.path.expanduser(cache) if cache else None)
  from jaxfer.data import files  # pylint: disable=g-import-not-at-top
  if kind == "rafdb":
    return files.RafDB(_need_path(cfg, kind), split=split, on_bad=on_bad)
  if kind == "affectnet":
    return files.AffectNet(_need_path(cfg, kind), split=split,
                           num_classes=cfg.num_classes, on_bad=on_bad)
  if kind == "image_folder":
    return files.ImageFolder(_split_path(_need_path(cfg, kind), split),
                             on_bad=on_bad)
  if kind == "labeled_csv":
    return files.LabeledCSV(
        _split_path(_need_path(cfg, kind), split, ".csv"),
        class_names=labels_lib.class_names(cfg.class_table), on_bad=on_bad)
  if kind == "unlabeled_folder":
    return files.UnlabeledFolder(_need_path(cfg, kind), on_bad=on_bad)
  if kind == "affwild2":
    from jaxfer.data import affwild2  # pylint: disable=g-import-not-at-top
    aw = cfg.get("affwild2", {})
    return affwild2.AffWild2(_need_path(cfg, kind), split=split,
                             frames=aw.get("frames", "annotated"),
                             every=aw.get("every", 1), on_bad=on_bad)
  if kind == "distilled":
    from jaxfer.data import distilled  # pylint: disable=g-import-not-at-top
    return distilled.load(_need_path(cfg, kind))
  if kind == "mined":
    from jaxfer.data import mined  # pylint: disable=g-import-not-at-top
    return mined.load(_need_path(cfg, kind))
  if kind == "msceleb_tsv":
    from jaxfer.data import msceleb  # pylint: disable=g-import-not-at-top
    return msceleb.MsCelebTSV(_need_path(cfg, kind), on_bad=on_bad,
                              index_path=cfg.get("msceleb_index") or None)
  if kind == "tfds":
    from jaxfer.data import tfds_source  # pylint: disable=g-import-not-at-top
    return tfds_source.TfdsSource(cfg.tfds_name, split=split,
                                  data_dir=cfg.get("path") or None)
  raise ValueError(f"config.data.source {kind!r} is not one of synthetic, "
                   "fer2013, rafdb, affectnet, affwild2, image_folder, "
                   "labeled_csv, unlabeled_folder, tfds, distilled, mined, "
                   "msceleb_tsv")


def check_classes(source, num_classes: int) -> None:
  """The config's class count must agree with the data's."""
  names = source.class_names
  if names is not None and len(names) != num_classes:
    raise sources.DataError(
        f"config.data.num_classes={num_classes} but {source.name} has "
        f"{len(names)} classes {tuple(names)}")


@dataclasses.dataclass
class Data:
  """Everything the training loop reads."""
  train: object                      # grain.IterDataset of global-batch parts
  evals: dict                        # split name -> source
  class_names: tuple
  eval_transform: Callable
  log: list                          # lines describing the data
  pool_size: int = 0                 # faces in the unlabeled pool (0: none)


def add_mined(labeled, cfg):
  """The labeled set plus `cfg.mined.path`'s mined set (all of it, or mixed
  in at `cfg.mined.ratio` of draws)."""
  mix = cfg.get("mined", {})
  if not mix.get("path"):
    return labeled
  from jaxfer.data import distilled, mined  # pylint: disable=g-import-not-at-top
  extra = mined.load(os.path.expanduser(mix.path))
  check_classes(extra, cfg.num_classes)
  if mix.get("ratio", 0.0):
    return distilled.Mixed(labeled, extra, mix.ratio)
  return mined.Concat(labeled, extra)


def _views(cfg):
  common = dict(size=cfg.image_size, channels=cfg.channels,
                mean=tuple(cfg.mean), std=tuple(cfg.std))
  aug = dict(crop_padding=cfg.crop_padding, flip=cfg.flip)
  strong = dict(n=cfg.randaugment.n, m=cfg.randaugment.m,
                pool=cfg.randaugment.pool)
  return (functools.partial(views.labeled_train, **common, **aug,
                            strong=strong if cfg.strong_augment else None),
          functools.partial(views.unlabeled_pair, **common, **aug,
                            **strong),
          functools.partial(views.eval_view, **common))


def _describe(src) -> str:
  line = f"{src.name}: {len(src)} examples"
  if getattr(src, "labels", None) is not None and src.class_names:
    counts = np.bincount(src.labels, minlength=len(src.class_names))
    line += " (" + ", ".join(f"{name} {n}" for name, n in
                             zip(src.class_names, counts)) + ")"
  if getattr(src, "dropped", None):
    line += f"; dropped by protocol: {src.dropped}"
  if src.skipped:
    line += f"; SKIPPED {len(src.skipped)} bad items, first: {src.skipped[0]}"
  return line


def labeled_split(cfg):
  """(full train split, labeled subset, indices of the rest) of `cfg`."""
  full = make_source(cfg, cfg.train_split)
  check_classes(full, cfg.num_classes)
  labeled_idx, rest_idx = pipeline.split_labeled(
      full.labels, cfg.labeled_fraction, num_classes=cfg.num_classes,
      seed=cfg.split_seed, balanced=cfg.balanced_split)
  labeled = full if cfg.labeled_fraction == 1 else sources.Subset(
      full, labeled_idx, f"{full.name}[{cfg.labeled_fraction:.0%} labeled]")
  return full, labeled, rest_idx


def pool_source(ucfg, full, rest_idx, field: str):
  """The unlabeled pool `ucfg` names: "rest" (the train split outside the
  labeled subset; items carry the hidden "true_label") or any source
  (labels dropped), centre-cropped if asked."""
  if ucfg.source == "rest":
    if not len(rest_idx):
      raise ValueError(f"{field}.source='rest' needs "
                       "config.data.labeled_fraction < 1")
    return sources.Unlabeled(sources.Subset(
        full, rest_idx, f"{full.name}[rest]"), keep_true_label=True)
  pool = make_source(ucfg, ucfg.get("split", "train"))
  pool = pool if pool.class_names is None else sources.Unlabeled(pool)
  if ucfg.get("center_crop", 1.0) != 1.0:
    pool = sources.CenterCropped(pool, ucfg.center_crop)
  return pool


def build(config, *, process_index: int = 0, process_count: int = 1) -> Data:
  """Sources and this process's training stream for `config`."""
  cfg = config.data
  train_tf, pair_tf, eval_tf = _views(cfg)
  full, labeled, rest_idx = labeled_split(cfg)
  mix = cfg.get("distilled", {})
  if mix.get("path"):
    from jaxfer.data import distilled  # pylint: disable=g-import-not-at-top
    extra = distilled.load(os.path.expanduser(mix.path))
    check_classes(extra, cfg.num_classes)
    labeled = distilled.Mixed(labeled, extra, mix.ratio)
  labeled = add_mined(labeled, cfg)
  log = [_describe(labeled)]
  unlabeled = None
  if config.get("mu", 0):
    unlabeled = pool_source(cfg.unlabeled, full, rest_idx,
                            "config.data.unlabeled")
    log.append(_describe(unlabeled))
  train = pipeline.train_dataset(
      pipeline.Stream(labeled, train_tf, cfg.balanced_sampling,
                      cfg.num_classes),
      batch_size=cfg.batch_size, seed=config.seed,
      unlabeled=None if unlabeled is None else pipeline.Stream(unlabeled,
                                                               pair_tf),
      mu=config.get("mu", 0), process_index=process_index,
      process_count=process_count, num_threads=cfg.num_threads,
      worker_count=cfg.worker_count)
  evals = {}
  for split in cfg.eval_splits:
    evals[split] = make_source(cfg, split)
    check_classes(evals[split], cfg.num_classes)
    log.append(_describe(evals[split]))
  for name, other in cfg.cross_eval.items():
    other_cfg = cfg.copy_and_resolve_references()
    with other_cfg.unlocked():
      other_cfg.update(other)
    evals[name] = sources.Relabeled(
        make_source(other_cfg, other["split"]), full.class_names,
        drop_unmapped=other.get("drop_unmapped", False))
    log.append(_describe(evals[name]))
  return Data(train, evals, tuple(full.class_names), eval_tf, log,
              0 if unlabeled is None else len(unlabeled))
