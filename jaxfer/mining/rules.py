"""Which faces of a scored pool are kept: thresholds, agreement, dedup, caps.

The rule, in order (`select`):

1. confidence: a face predicted as class c passes when its softmax
   confidence is >= T(c). T(c) is `Rule.confidence` (one value, or one per
   class), raised, when `confidence_quantile` q > 0, to the q-quantile of
   the confidences of the pool's faces predicted as c (each class then
   keeps its own most confident 1 - q, however sure the model is of it);
2. feature similarity: the most similar class prototype is the predicted
   class (`agree`), the cosine to it is >= `similarity`, and optionally
   the k-NN vote of the labeled faces agrees too (`knn_agree`, with at
   least `knn_share` of the votes);
3. leakage: a face whose pixels (at the model's input size) equal a face of
   the labeled set or of any evaluation split is dropped, and of several
   identical pool faces only the best is kept;
4. caps, best first by score = w confidence + (1 - w) similarity (`w` =
   `score_weight`; ties: the lower pool index first): at most
   `per_identity` faces of one identity per class (identity -1, unknown,
   is never capped), then at most `per_class` faces per class (0: no cap).

Everything is numpy on the candidate columns of the pass's score tables;
nothing here reads images.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Rule:
  """The selection rule (see the module doc); `config.select` fields."""

  confidence: float | tuple = 0.9
  confidence_quantile: float = 0.0
  agree: bool = True
  similarity: float = 0.0
  knn_agree: bool = False
  knn_share: float = 0.5
  per_class: int = 0
  per_identity: int = 0
  score_weight: float = 0.5

  def __post_init__(self):
    conf = np.atleast_1d(np.asarray(self.confidence, np.float64))
    if np.any((conf < 0) | (conf > 1)):
      raise ValueError(
        f"config.select.confidence={self.confidence} must be in [0, 1]"
      )
    if not 0 <= self.confidence_quantile < 1:
      raise ValueError(
        "config.select.confidence_quantile="
        f"{self.confidence_quantile} must be in [0, 1)"
      )
    if not 0 <= self.score_weight <= 1:
      raise ValueError(
        f"config.select.score_weight={self.score_weight} must be in [0, 1]"
      )
    for name in ("per_class", "per_identity"):
      if getattr(self, name) < 0:
        raise ValueError(f"config.select.{name} must be >= 0 (0: no cap)")


def thresholds(rule: Rule, confidence, pred, valid, num_classes: int):
  """float64[C]: the confidence threshold T(c) of each predicted class."""
  base = np.broadcast_to(
    np.asarray(rule.confidence, np.float64), (num_classes,)
  ).copy()
  if np.size(rule.confidence) not in (1, num_classes):
    raise ValueError(
      f"config.select.confidence has {np.size(rule.confidence)}"
      f" values; give one, or one per class ({num_classes})"
    )
  if rule.confidence_quantile:
    for c in range(num_classes):
      conf = confidence[valid & (pred == c)]
      if conf.size:
        base[c] = max(base[c], np.quantile(conf, rule.confidence_quantile))
  return base


def eligible(rule: Rule, table: dict, thr) -> np.ndarray:
  """bool[N]: faces that pass steps 1 and 2."""
  pred = table["pred"]
  ok = table["valid"] & (table["confidence"] >= thr[pred])
  if rule.agree:
    ok &= table["proto"] == pred
  ok &= table["similarity"] >= rule.similarity
  if rule.knn_agree:
    if "knn_pred" not in table:
      raise ValueError("config.select.knn_agree needs config.select.knn > 0")
    ok &= (table["knn_pred"] == pred) & (table["knn_share"] >= rule.knn_share)
  return ok


def best_per_group(groups, scores, index) -> np.ndarray:
  """bool mask: the best (score, then lowest index) row of each group."""
  order = np.lexsort((index, -scores, groups))
  first = np.ones(len(order), bool)
  first[1:] = groups[order][1:] != groups[order][:-1]
  keep = np.zeros(len(order), bool)
  keep[order[first]] = True
  return keep


def rank_in_group(groups, scores, index) -> np.ndarray:
  """int64[N]: each row's rank (0 = best) among the rows of its group."""
  order = np.lexsort((index, -scores, groups))
  g = groups[order]
  starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
  lengths = np.diff(np.r_[starts, len(g)])
  ranks = np.empty(len(g), np.int64)
  ranks[order] = np.arange(len(g)) - np.repeat(starts, lengths)
  return ranks


def scores_of(rule: Rule, table: dict) -> np.ndarray:
  """The combined score of every row."""
  w = rule.score_weight
  return w * table["confidence"] + (1 - w) * table["similarity"]


def select(rule: Rule, table: dict, num_classes: int, banned=()):
  """(positions, thresholds, counts): the kept rows of a score table.

  Args:
    rule: the Rule.
    table: numpy columns of equal length N: index (pool index), valid,
      confidence, pred, proto, similarity, identity, hash (uint64 of the
      pixels) and, with a k-NN rule, knn_pred and knn_share.
    num_classes: C.
    banned: hashes of the labeled and evaluation faces.

  Returns:
    positions into the table of the kept faces, by class then best first;
    T(c); and how many faces each step left (a dict, for the log).
  """
  thr = thresholds(
    rule, table["confidence"], table["pred"], table["valid"], num_classes
  )
  ok = eligible(rule, table, thr)
  counts = {
    "pool": int(len(ok)),
    "decodable": int(table["valid"].sum()),
    "passed confidence and similarity": int(ok.sum()),
  }
  ok &= ~np.isin(table["hash"], np.asarray(list(banned), np.uint64))
  counts["not in the labeled or evaluation sets"] = int(ok.sum())
  pos = np.flatnonzero(ok)
  scores = scores_of(rule, table)
  s, idx = scores[pos], table["index"][pos]
  pos = pos[best_per_group(table["hash"][pos], s, idx)]
  counts["distinct pixels"] = int(len(pos))
  labels = table["pred"][pos].astype(np.int64)
  if rule.per_identity and len(pos):
    ident = table["identity"][pos].astype(np.int64)
    # Unknown identities (-1) each form their own group.
    ident = np.where(ident < 0, -1 - table["index"][pos], ident)
    groups = labels * (1 << 40) + ident - ident.min()
    pos = pos[
      rank_in_group(groups, scores[pos], table["index"][pos])
      < rule.per_identity
    ]
    counts[f"<= {rule.per_identity} per identity and class"] = int(len(pos))
  labels = table["pred"][pos].astype(np.int64)
  ranks = rank_in_group(labels, scores[pos], table["index"][pos])
  if rule.per_class:
    pos = pos[ranks < rule.per_class]
    counts[f"<= {rule.per_class} per class"] = int(len(pos))
  order = np.lexsort((table["index"][pos], -scores[pos], table["pred"][pos]))
  return pos[order], thr, counts
