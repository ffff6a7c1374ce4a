"""Grain pipelines: deterministic, shardable, resumable training streams.

Every training example has a *global element index* ``e``. Which source row
it reads and the randomness of its augmentation depend only on ``(seed, e)``,
so the global batches are the same whatever the number of processes, and a
stream restored from its Grain iterator state replays exactly. Process ``p``
of ``P`` reads the slice ``[p * L, (p + 1) * L)`` of each global batch of
``G = P * L`` elements.

An element is one labeled example plus, when ``mu > 0``, ``mu`` unlabeled
examples, so one Grain iterator (one checkpointable state) yields batches
``{"image", "label"[, "soft_label"], "unlabeled_weak", "unlabeled_strong"}``.
"""

from collections.abc import Callable
import dataclasses

import grain
import numpy as np

from jaxfer.data.base import DataError
from jaxfer.data.base import Subset

# Long enough for any run; Grain datasets are lazy, nothing is allocated.
_STREAM_LENGTH = 2**40


def split_labeled(
  labels: np.ndarray,
  fraction: float,
  *,
  num_classes: int,
  seed: int,
  balanced: bool = True,
):
  """Deterministic "k% labeled, the rest unlabeled" split of a labeled set.

  Args:
    labels: int labels of the whole set.
    fraction: the labeled fraction k/100 of the set, in (0, 1].
    num_classes: number of classes.
    seed: the split's seed.
    balanced: take ``round(fraction * N / num_classes)`` rows of every class
      (the Face2Exp protocol); otherwise ``round(fraction * n_c)`` of each.

  Returns:
    (labeled indices, unlabeled indices), both sorted int64 arrays.
  """
  labels = np.asarray(labels)
  if not 0 < fraction <= 1:
    raise ValueError(f"labeled fraction must be in (0, 1], got {fraction}")
  if fraction == 1:
    return np.arange(len(labels)), np.arange(0)
  rng = np.random.default_rng(seed)
  per_class = round(fraction * len(labels) / num_classes)
  chosen = []
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    want = per_class if balanced else round(fraction * len(members))
    if want > len(members):
      raise DataError(
        f"class {c} has {len(members)} examples, fewer than the "
        f"{want} a class-balanced {fraction:.1%} subset needs; lower "
        "config.data.labeled_fraction or set config.data.balanced_split="
        "False"
      )
    chosen.append(rng.choice(members, size=want, replace=False))
  labeled = np.sort(np.concatenate(chosen))
  return labeled, np.setdiff1d(np.arange(len(labels)), labeled)


def _balanced_picker(labels: np.ndarray, num_classes: int, seed: int):
  members = [np.flatnonzero(labels == c) for c in range(num_classes)]
  for c, m in enumerate(members):
    if not m.size:
      raise DataError(
        f"class {c} has no examples: class-balanced sampling is impossible"
      )

  def pick(e: int) -> int:
    rng = np.random.default_rng([seed, e, 1])
    m = members[rng.integers(num_classes)]
    return int(m[rng.integers(m.size)])

  return pick


def _shuffled_picker(n: int, seed: int):
  order = grain.MapDataset.range(n).shuffle(seed=seed).repeat(None)
  return lambda e: int(order[e])


@dataclasses.dataclass(frozen=True)
class Stream:
  """A source with its per-example transform and sampling rule."""

  source: object
  transform: Callable  # (item, rng) -> dict of arrays
  balanced: bool = False
  num_classes: int = 0

  def picker(self, seed: int):
    if self.balanced:
      return _balanced_picker(
        np.asarray(self.source.labels), self.num_classes, seed
      )
    if len(self.source) == 0:
      raise DataError(f"{self.source.name} is empty")
    return _shuffled_picker(len(self.source), seed)


def train_dataset(
  labeled: Stream,
  *,
  batch_size: int,
  seed: int,
  unlabeled: Stream | None = None,
  mu: int = 0,
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 2,
  prefetch: int = 4,
  worker_count: int = 0,
) -> grain.IterDataset:
  """The infinite training stream of this process's part of global batches.

  Args:
    labeled: the labeled stream.
    batch_size: the global labeled batch size G (divisible by process_count).
    seed: the data seed.
    unlabeled: the unlabeled stream (needed when mu > 0).
    mu: unlabeled examples per labeled one.
    process_index: this process.
    process_count: number of processes.
    num_threads: Grain read threads.
    prefetch: batches prefetched.
    worker_count: Grain worker processes (0: none).
  """
  if batch_size % process_count:
    raise ValueError(
      f"config.data.batch_size={batch_size} is not divisible "
      f"by the process count {process_count}"
    )
  if mu and unlabeled is None:
    raise ValueError("mu > 0 needs an unlabeled stream")
  local = batch_size // process_count
  pick_l = labeled.picker(seed)
  pick_u = unlabeled.picker(seed + 1) if mu else None

  def element(i: int):
    e = (i // local) * batch_size + process_index * local + i % local
    rng = np.random.default_rng([seed, e, 2])
    out = dict(labeled.transform(labeled.source[pick_l(e)], rng))
    if mu:
      picks = [pick_u(e * mu + k) for k in range(mu)]
      views = [unlabeled.transform(unlabeled.source[j], rng) for j in picks]
      for key in views[0]:
        out[f"unlabeled_{key}"] = np.stack([v[key] for v in views])
      out["unlabeled_index"] = np.asarray(picks, np.int32)
    return out

  ds = grain.MapDataset.range(_STREAM_LENGTH).map(element)
  ds = ds.batch(local, drop_remainder=True).map(_flatten_unlabeled)
  ds = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
  )
  if worker_count:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return ds


def _flatten_unlabeled(batch):
  return {
    k: (v.reshape((-1,) + v.shape[2:]) if k.startswith("unlabeled_") else v)
    for k, v in batch.items()
  }


def eval_batches(
  source,
  transform: Callable,
  *,
  batch_size: int,
  process_index: int = 0,
  process_count: int = 1,
  num_threads: int = 2,
):
  """Yields this process's part of padded global batches over a source.

  Every example is seen once; the last global batch is padded and carries
  ``"mask"`` (1 for real examples, 0 for padding), so no example is dropped
  and every batch has the same shape.
  """
  if batch_size % process_count:
    raise ValueError(
      f"eval batch size {batch_size} is not divisible by the "
      f"process count {process_count}"
    )
  local = batch_size // process_count
  n = len(source)
  num_batches = -(-n // batch_size)

  def element(i: int):
    e = (i // local) * batch_size + process_index * local + i % local
    item = dict(transform(source[min(e, n - 1)]))
    item["mask"] = np.float32(e < n)
    return item

  ds = grain.MapDataset.range(num_batches * local).map(element)
  ds = ds.batch(local).to_iter_dataset(
    grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2)
  )
  return iter(ds)


def subset(source, indices, name: str = ""):
  """Rows `indices` of `source` (see Subset)."""
  return Subset(source, indices, name)
