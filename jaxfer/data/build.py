"""Builds the sources and Grain streams a config asks for.

`config.data.source` names the labeled dataset; `config.data.path` is its
file or folder (for folder datasets with splits, ``{split}`` in the path is
replaced by the split name, otherwise the split is a subfolder or, for
``labeled_csv``, ``<path>/<split>.csv``). `config.data.unlabeled` names the
unlabeled pool of semi-supervised methods.
"""

from collections.abc import Callable
import dataclasses
import functools
import os

import numpy as np

from jaxfer.core import defaults
from jaxfer.data import base
from jaxfer.data import pipeline
from jaxfer.data import sources
from jaxfer.data import teacher
from jaxfer.data import views
from jaxfer.data.sources import distilled
from jaxfer.data.sources import mined


def make_source(cfg, split: str):
  """The labeled (or, for `unlabeled_folder`, unlabeled) source of a split
  (`jaxfer.data.sources.make`)."""
  return sources.make(cfg, split)


def check_classes(source, num_classes: int) -> None:
  """The config's class count must agree with the data's."""
  names = source.class_names
  if names is not None and len(names) != num_classes:
    raise base.DataError(
      f"config.data.num_classes={num_classes} but {source.name} has "
      f"{len(names)} classes {tuple(names)}"
    )


@dataclasses.dataclass
class Data:
  """Everything the training loop reads."""

  train: object  # grain.IterDataset of global-batch parts
  evals: dict  # split name -> source
  class_names: tuple
  eval_transform: Callable
  log: list  # lines describing the data
  pool_size: int = 0  # faces in the unlabeled pool (0: none)


def add_mined(labeled, cfg):
  """The labeled set plus `cfg.mined.path`'s mined set (all of it, or mixed
  in at `cfg.mined.ratio` of draws)."""
  mix = cfg.mined
  if not mix.path:
    return labeled
  extra = mined.load(os.path.expanduser(mix.path))
  check_classes(extra, cfg.num_classes)
  if mix.ratio:
    return distilled.Mixed(labeled, extra, mix.ratio)
  return mined.Concat(labeled, extra)


def _views(cfg):
  common = dict(
    size=cfg.image_size,
    channels=cfg.channels,
    mean=tuple(cfg.mean),
    std=tuple(cfg.std),
  )
  aug = dict(crop_padding=cfg.crop_padding, flip=cfg.flip)
  strong = dict(
    n=cfg.randaugment.n, m=cfg.randaugment.m, pool=cfg.randaugment.pool
  )
  return (
    functools.partial(
      views.labeled_train,
      **common,
      **aug,
      strong=strong if cfg.strong_augment else None,
    ),
    functools.partial(views.unlabeled_pair, **common, **aug, **strong),
    functools.partial(views.eval_view, **common),
  )


def eval_view(cfg):
  """The evaluation view of `cfg` (`config.data`): image -> normalised
  array, no augmentation."""
  return _views(cfg)[2]


def _describe(src) -> str:
  line = f"{src.name}: {len(src)} examples"
  if getattr(src, "labels", None) is not None and src.class_names:
    counts = np.bincount(src.labels, minlength=len(src.class_names))
    line += (
      " ("
      + ", ".join(f"{name} {n}" for name, n in zip(src.class_names, counts))
      + ")"
    )
  if getattr(src, "dropped", None):
    line += f"; dropped by protocol: {src.dropped}"
  if src.skipped:
    line += f"; SKIPPED {len(src.skipped)} bad items, first: {src.skipped[0]}"
  return line


def split_indices(cfg, labels):
  """(labeled indices, the rest) of a train split with `labels`, by `cfg`'s
  (`config.data`'s) labeled_fraction, split_seed and balanced_split: the
  one place the labeled subset is drawn."""
  return pipeline.split_labeled(
    labels,
    cfg.labeled_fraction,
    num_classes=cfg.num_classes,
    seed=cfg.split_seed,
    balanced=cfg.balanced_split,
  )


def labeled_split(cfg):
  """(full train split, labeled subset, indices of the rest) of `cfg`."""
  full = make_source(cfg, cfg.train_split)
  check_classes(full, cfg.num_classes)
  if cfg.teacher.path:
    full = teacher.attach(full, cfg.teacher)
  labeled_idx, rest_idx = split_indices(cfg, full.labels)
  labeled = (
    full
    if cfg.labeled_fraction == 1
    else base.Subset(
      full, labeled_idx, f"{full.name}[{cfg.labeled_fraction:.0%} labeled]"
    )
  )
  return full, labeled, rest_idx


def pool_source(ucfg, full, rest_idx, field: str):
  """The unlabeled pool `ucfg` names: "rest" (the train split outside the
  labeled subset; items carry the hidden "true_label") or any source
  (labels dropped), centre-cropped if asked."""
  if ucfg.source == "rest":
    if not len(rest_idx):
      raise ValueError(
        f"{field}.source='rest' needs config.data.labeled_fraction < 1"
      )
    return base.Unlabeled(
      base.Subset(full, rest_idx, f"{full.name}[rest]"), keep_true_label=True
    )
  pool = make_source(ucfg, ucfg.split)
  pool = pool if pool.class_names is None else base.Unlabeled(pool)
  if ucfg.center_crop != 1.0:
    pool = base.CenterCropped(pool, ucfg.center_crop)
  return pool


def cross_eval_section(cfg, name: str, entry):
  """`cfg.cross_eval[name]` as a full section: the fields of
  `defaults.cross_eval` and of a source, those not given taken from the
  labeled set's `cfg`; an unknown field is an error naming it."""
  section = defaults.source(**{k: cfg[k] for k in defaults.source()})
  section.update(defaults.cross_eval())
  unknown = sorted(set(entry) - set(section))
  if unknown:
    raise ValueError(
      f"config.data.cross_eval.{name} has unknown fields "
      f"{unknown}; it takes {sorted(section)}"
    )
  section.update(dict(entry))
  return section


def build(config, *, process_index: int = 0, process_count: int = 1) -> Data:
  """Sources and this process's training stream for `config`."""
  cfg = config.data
  train_tf, pair_tf, eval_tf = _views(cfg)
  full, labeled, rest_idx = labeled_split(cfg)
  mix = cfg.distilled
  if mix.path:
    extra = distilled.load(os.path.expanduser(mix.path))
    check_classes(extra, cfg.num_classes)
    labeled = distilled.Mixed(labeled, extra, mix.ratio)
  labeled = add_mined(labeled, cfg)
  log = [_describe(labeled)]
  unlabeled = None
  if config.mu:
    unlabeled = pool_source(
      cfg.unlabeled, full, rest_idx, "config.data.unlabeled"
    )
    log.append(_describe(unlabeled))
  train = pipeline.train_dataset(
    pipeline.Stream(labeled, train_tf, cfg.balanced_sampling, cfg.num_classes),
    batch_size=cfg.batch_size,
    seed=config.seed,
    unlabeled=None
    if unlabeled is None
    else pipeline.Stream(unlabeled, pair_tf),
    mu=config.mu,
    process_index=process_index,
    process_count=process_count,
    num_threads=cfg.num_threads,
    worker_count=cfg.worker_count,
  )
  evals = {}
  for split in cfg.eval_splits:
    evals[split] = make_source(cfg, split)
    check_classes(evals[split], cfg.num_classes)
    log.append(_describe(evals[split]))
  for name, other in cfg.cross_eval.items():
    entry = cross_eval_section(cfg, name, other)
    evals[name] = base.Relabeled(
      make_source(entry, entry.split),
      full.class_names,
      drop_unmapped=entry.drop_unmapped,
    )
    log.append(_describe(evals[name]))
  return Data(
    train,
    evals,
    tuple(full.class_names),
    eval_tf,
    log,
    0 if unlabeled is None else len(unlabeled),
  )


def per_class_images(cfg, n: int) -> np.ndarray:
  """float32 [num_classes * n, H, W, C]: `n` random labeled training images
  per class of `cfg` (a `config.data` section), class-major, in the
  evaluation view (deterministic by `split_seed`). The error names a class
  with fewer than `n`."""
  src = make_source(cfg, cfg.train_split)
  labeled, _ = split_indices(cfg, src.labels)
  labels = np.asarray(src.labels)[labeled]
  rng = np.random.default_rng(cfg.split_seed)
  view = eval_view(cfg)
  out = []
  for c in range(cfg.num_classes):
    members = labeled[labels == c]
    if len(members) < n:
      raise base.DataError(
        f"{src.name}: class {c} has {len(members)} labeled "
        f"images, fewer than distill.images_per_class={n}"
      )
    for i in rng.choice(members, n, replace=False):
      out.append(view(src[int(i)])["image"])
  return np.stack(out).astype(np.float32)


def blank_per_class_images(cfg):
  """(n) -> zeros of `per_class_images(cfg, n)`'s shape: for a state's
  structure where no image is to be read (loading a workdir, whose
  checkpoint gives the arrays; checking a config)."""
  shape = (cfg.image_size, cfg.image_size, cfg.channels)
  return lambda n: np.zeros((cfg.num_classes * n, *shape), np.float32)
