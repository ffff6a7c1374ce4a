"""Classification metrics from a confusion matrix (host-side numpy)."""

import numpy as np


def confusion_matrix(labels, preds, num_classes: int, mask=None) -> np.ndarray:
  """int64 [C, C] counts, rows true class, columns predicted class."""
  labels, preds = np.asarray(labels), np.asarray(preds)
  keep = np.ones(labels.shape, bool) if mask is None else np.asarray(mask) > 0
  flat = labels[keep] * num_classes + preds[keep]
  return np.bincount(flat, minlength=num_classes**2).reshape(
    num_classes, num_classes
  )


def bootstrap(labels, preds, num_classes: int, *, n=1000, seed=0) -> dict:
  """95% percentile bootstrap intervals of `summarize`'s metrics: the rows
  resampled with replacement `n` times (seeded); {metric: (low, high)}."""
  labels, preds = np.asarray(labels), np.asarray(preds)
  rng = np.random.default_rng(seed)
  draws = {k: [] for k in ("accuracy", "mean_class_accuracy", "macro_f1")}
  for _ in range(n):
    idx = rng.integers(0, len(labels), len(labels))
    m = summarize(confusion_matrix(labels[idx], preds[idx], num_classes))
    for k in draws:
      draws[k].append(m[k])
  return {
    k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
    for k, v in draws.items()
  }


def summarize(cm: np.ndarray) -> dict[str, float]:
  """Accuracy, mean per-class accuracy (recall) and macro-F1.

  Classes absent from the labels are left out of the two class means (their
  recall is undefined); a present class that is never predicted has F1 0.
  """
  cm = np.asarray(cm, np.float64)
  tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
  present = support > 0
  recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
  precision = np.divide(
    tp, predicted, out=np.zeros_like(tp), where=predicted > 0
  )
  denom = precision + recall
  f1 = np.divide(
    2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0
  )
  total = cm.sum()
  return {
    "accuracy": float(tp.sum() / total) if total else 0.0,
    "mean_class_accuracy": float(recall[present].mean())
    if present.any()
    else 0.0,
    "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
  }
