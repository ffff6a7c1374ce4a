"""Evaluation: the training loop's and `python -m jaxfer.evaluate`'s.

`evaluate` folds batches into confusion matrices and metrics for several
models in one pass; `Evaluator` is the loop's evaluation of every split
(metrics and confusion per model, means over model groups, the value
checkpoints are selected by) as an `Evaluation`, which
`jaxfer.loop.reporter` writes, prints and draws.
"""

from collections.abc import Callable
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer.core import losses
from jaxfer.core import metrics as metrics_lib
from jaxfer.data import base
from jaxfer.data import build as data_build
from jaxfer.data import pipeline


def tta_logits(apply, variables, images, *, flip: bool):
  """Logits of `images`, or with `flip` the log of the mean of the class
  probabilities of each image and its mirror (test-time augmentation: two
  forwards)."""
  logits, _ = apply(variables, images)
  if not flip:
    return logits
  mirrored, _ = apply(variables, images[:, :, ::-1])
  return jnp.log((jax.nn.softmax(logits) + jax.nn.softmax(mirrored)) / 2)


def eval_fn(apply, *, flip: bool = False):
  """The evaluation of one batch: (predictions, labels, mask, summed
  cross-entropy); `evaluate` folds them into metrics. `flip`: mirrored
  test-time augmentation (`tta_logits`)."""

  def fn(variables, batch):
    logits = tta_logits(apply, variables, batch["image"], flip=flip)
    loss = losses.xent(logits, batch["label"]) * batch["mask"]
    return jnp.argmax(logits, -1), batch["label"], batch["mask"], jnp.sum(loss)

  return fn


def evaluate(
  apply_jit, variables: dict, batches, num_classes: int, predictions=None
):
  """Confusion matrices and mean losses of several models on one pass.

  Returns {model name: (metrics dict, confusion matrix)}; a dict passed as
  `predictions` is filled with {model name: (labels, predictions)}, int
  arrays of the split's rows in order.
  """
  rows = {name: ([], []) for name in variables}
  cms = {
    name: np.zeros((num_classes, num_classes), np.int64) for name in variables
  }
  loss = dict.fromkeys(variables, 0.0)
  count = 0.0
  for batch in batches:
    for name, v in variables.items():
      # Replicated outputs: every process can read the whole global batch.
      preds, labels, mask, loss_sum = map(np.asarray, apply_jit(v, batch))
      cms[name] += metrics_lib.confusion_matrix(
        labels, preds, num_classes, mask
      )
      if predictions is not None:
        rows[name][0].append(labels[mask > 0])
        rows[name][1].append(preds[mask > 0])
      loss[name] += float(loss_sum)
    count += float(mask.sum())
  if predictions is not None:
    for name, (y, p) in rows.items():
      predictions[name] = (np.concatenate(y), np.concatenate(p))
  return {
    name: (
      {"loss": loss[name] / max(count, 1), **metrics_lib.summarize(cms[name])},
      cms[name],
    )
    for name in variables
  }


@dataclasses.dataclass
class SplitResult:
  """One split's evaluation: {model: (metrics, confusion)}, the source read
  (after relabelling), the rows left out as unmapped, the wall seconds."""

  results: dict
  source: object
  dropped: int
  seconds: float
  predictions: dict = dataclasses.field(default_factory=dict)


def eval_source(class_names, data_cfg, split: str, drop_unmapped: bool):
  """(source, rows left out as unmapped) of one split of `data_cfg`, its
  labels mapped to `class_names` by name (`jaxfer.data.labels`)."""
  names = tuple(class_names)
  src = data_build.make_source(data_cfg, split)
  if src.class_names is None:
    raise base.DataError(
      f"{src.name} has no class names to map to the model's {names}"
    )
  dropped = 0
  if tuple(src.class_names) != names:
    src = base.Relabeled(src, names, drop_unmapped=drop_unmapped)
    dropped = src.dropped["unmapped_classes"]
  if not len(src):
    raise base.DataError(f"{src.name}: no rows to evaluate")
  return src, dropped


def evaluate_split(
  apply,
  variables: dict,
  class_names,
  data_cfg,
  split: str,
  *,
  flip: bool = False,
  drop_unmapped: bool = False,
  warmup: bool = False,
) -> SplitResult:
  """Evaluates models on one split of any source of `data_cfg` (a config's
  `data` section), its labels mapped to `class_names` by name
  (`jaxfer.data.labels`); a class with no counterpart is an error unless
  `drop_unmapped` leaves its rows out (counted). `warmup`: compile on the
  first batch before the timed pass (for faces/s)."""
  names = tuple(class_names)
  src, dropped = eval_source(names, data_cfg, split, drop_unmapped)

  def batches():
    return pipeline.eval_batches(
      src, data_build.eval_view(data_cfg), batch_size=data_cfg.eval_batch_size
    )

  apply_jit = jax.jit(eval_fn(apply, flip=flip))
  if warmup:
    first = next(batches())
    for v in variables.values():
      jax.block_until_ready(apply_jit(v, first))
  t = time.perf_counter()
  predictions = {}
  results = evaluate(apply_jit, variables, batches(), len(names), predictions)
  return SplitResult(
    results, src, dropped, time.perf_counter() - t, predictions
  )


@dataclasses.dataclass
class EnsembleResult:
  """An ensemble's evaluation of one split: the mean class probabilities
  float32 [N, C] and labels int [N] of the source's rows in order, the
  metrics and confusion of their argmax, the source, the rows left out as
  unmapped, the wall seconds."""

  probabilities: np.ndarray
  labels: np.ndarray
  metrics: dict
  confusion: np.ndarray
  source: object
  dropped: int
  seconds: float


def ensemble_split(
  members,
  class_names,
  data_cfg,
  split: str,
  *,
  flip: bool = False,
  drop_unmapped: bool = False,
) -> EnsembleResult:
  """Evaluates the mean class probabilities of `members`, [(apply,
  variables)] of models with the same classes and input, on one split of
  `data_cfg` (as `evaluate_split`); `flip` averages each member's face and
  mirror first. The loss is the mean of -log p(label)."""
  names = tuple(class_names)
  src, dropped = eval_source(names, data_cfg, split, drop_unmapped)
  applies = [a for a, _ in members]

  @jax.jit
  def probs(variables, images):
    p = [
      jax.nn.softmax(tta_logits(a, v, images, flip=flip))
      for a, v in zip(applies, variables)
    ]
    return sum(p) / len(p)

  variables = tuple(v for _, v in members)
  t = time.perf_counter()
  out, labels = [], []
  batches = pipeline.eval_batches(
    src, data_build.eval_view(data_cfg), batch_size=data_cfg.eval_batch_size
  )
  for batch in batches:
    keep = np.asarray(batch["mask"]) > 0
    out.append(np.asarray(probs(variables, batch["image"]))[keep])
    labels.append(np.asarray(batch["label"])[keep])
  p, y = np.concatenate(out).astype(np.float32), np.concatenate(labels)
  if len(p) != len(src):
    raise RuntimeError(f"{src.name}: {len(p)} rows evaluated of {len(src)}")
  cm = metrics_lib.confusion_matrix(y, p.argmax(1), len(names))
  loss = float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())
  m = {"loss": loss, **metrics_lib.summarize(cm)}
  return EnsembleResult(p, y, m, cm, src, dropped, time.perf_counter() - t)


def per_class(cm: np.ndarray, class_names) -> dict:
  """{class: {"recall", "support"}} of a confusion matrix (rows: true)."""
  support = cm.sum(1)
  return {
    name: {
      "recall": float(cm[i, i] / support[i]) if support[i] else None,
      "support": int(support[i]),
    }
    for i, name in enumerate(class_names)
  }


def group_summaries(metrics: dict) -> dict:
  """Mean and std over models named "<group>/<i>" (several networks of one
  protocol): {"<group>/mean": {...}, "<group>/std": {...}}."""
  groups = {}
  for name, m in metrics.items():
    head, sep, tail = name.rpartition("/")
    if sep and tail.isdigit():
      groups.setdefault(head, []).append(m)
  out = {}
  for group, ms in groups.items():
    out[f"{group}/mean"] = {
      k: float(np.mean([m[k] for m in ms])) for k in ms[0]
    }
    out[f"{group}/std"] = {k: float(np.std([m[k] for m in ms])) for k in ms[0]}
  return out


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One evaluation of the loop: what `Evaluator` computed, nothing
  written yet (`jaxfer.loop.reporter.Reporter` writes, prints and draws it).

  Attributes:
    step: the state's step.
    splits: {split: {model: (metrics, confusion matrix)}}.
    summaries: {split: {"<group>/mean" or "<group>/std": metrics}} of the
      models named "<group>/<i>" (`group_summaries`).
    selection: the value checkpoints are chosen by (the selection split's
      first model, or its group's mean), None when that split is not
      evaluated.
  """

  step: int
  splits: dict
  summaries: dict
  selection: float | None

  def flat(self) -> dict:
    """{"<split>/<model>/<metric>": value} of every model and summary."""
    out = {}
    for split, evals in self.splits.items():
      rows = {name: m for name, (m, _) in evals.items()}
      for name, m in {**rows, **self.summaries[split]}.items():
        out.update({f"{split}/{name}/{k}": v for k, v in m.items()})
    return out


@dataclasses.dataclass
class Evaluator:
  """The loop's evaluation of every split of `data.evals`: computes, and
  writes nothing.

  Attributes:
    apply: the network's eval-mode apply.
    data: the run's `jaxfer.data.build.Data`.
    to_global: host batch -> global (sharded) batch.
    num_classes, eval_batch_size: from config.data.
    best_split, best_metric: config.checkpoint's selection.
    out_sharding: the outputs' sharding (replicated over the mesh, so
      every process reads them).
  """

  apply: Callable
  data: object
  to_global: Callable
  num_classes: int
  eval_batch_size: int
  best_split: str
  best_metric: str
  out_sharding: object

  def __post_init__(self):
    self._apply_jit = jax.jit(
      eval_fn(self.apply), out_shardings=self.out_sharding
    )

  def __call__(self, variables: dict, step: int) -> Evaluation:
    """Evaluates `variables` ({model: flax variables}, the first the one
    checkpoints are chosen by) on every split."""
    splits, summaries, selection = {}, {}, None
    for split, src in self.data.evals.items():
      batches = (
        self.to_global(b)
        for b in pipeline.eval_batches(
          src,
          self.data.eval_transform,
          batch_size=self.eval_batch_size,
          process_index=jax.process_index(),
          process_count=jax.process_count(),
        )
      )
      evals = evaluate(self._apply_jit, variables, batches, self.num_classes)
      splits[split] = evals
      summaries[split] = group_summaries({k: m for k, (m, _) in evals.items()})
      if split == self.best_split:
        first = next(iter(variables))
        group = first.rsplit("/", 1)[0]
        chosen = summaries[split].get(f"{group}/mean", evals[first][0])
        selection = chosen[self.best_metric]
    return Evaluation(step, splits, summaries, selection)
