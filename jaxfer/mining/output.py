"""The end of a selection: the rule applied to the pass's score tables, the
mined set written (`jaxfer.data.sources.mined`), the selection summary, and, where
the pool's true labels are known, the precision of the mined labels."""

import json

import numpy as np

from jaxfer.core import report
from jaxfer.core import statics
from jaxfer.data.sources import mined as mined_lib
from jaxfer.mining import rules as rules_lib
from jaxfer.mining.pool import blank
from jaxfer.mining.pool import pixels
from jaxfer.mining.pool import source_id


def rule_from(sel) -> rules_lib.Rule:
  per_class = tuple(sel.confidence_per_class)
  return statics.from_section(
    rules_lib.Rule,
    sel,
    where="config.select",
    confidence=per_class or sel.confidence,
  )


def write(
  sel, workdir, pool, table, banned, class_names, size, ch, is_main
) -> dict:
  """Selects from `table` by `config.select`'s rule; on process 0 writes
  ``mined/``, ``selection.json`` and (true labels known)
  ``precision.png``. Returns the summary."""
  rule = rule_from(sel)
  pos, thr, counts = rules_lib.select(rule, table, len(class_names), banned)
  idx = table["index"][pos]
  labels = table["pred"][pos]
  summary = {
    "counts": counts,
    "thresholds": dict(zip(class_names, map(float, thr))),
    "per_class": {
      n: int((labels == k).sum()) for k, n in enumerate(class_names)
    },
    "skipped_undecodable": int((~table["valid"]).sum()),
  }
  if "true_label" in table:
    true = table["true_label"][pos]
    summary["precision"] = {
      n: float((true[labels == k] == k).mean()) if (labels == k).any() else None
      for k, n in enumerate(class_names)
    }
    summary["precision_all"] = (
      float((true == labels).mean()) if len(true) else None
    )
  if is_main:
    faces = np.concatenate(
      [blank(size, ch)[None]]
      + [pixels(pool[int(i)]["image"], size, ch)[None] for i in idx]
    )[1:]
    manifest = {
      "pool_index": idx,
      "source_id": [source_id(pool, i) for i in idx],
      "identity": table["identity"][pos],
      "confidence": table["confidence"][pos],
      "similarity": table["similarity"][pos],
      "score": rules_lib.scores_of(rule, table)[pos],
    }
    if "true_label" in table:
      manifest["true_label"] = table["true_label"][pos]
    mined_lib.save(
      workdir / "mined",
      images=faces,
      labels=labels,
      class_names=class_names,
      manifest=manifest,
      sheet_per_class=sel.sheet_per_class,
      pool=pool.name,
      rule=dict(sel.to_dict()),
      selection=summary,
    )
    if "true_label" in table:
      report.precision_curves(
        _curves(rule, table, banned, len(class_names)),
        class_names,
        workdir / "precision.png",
        marks={k: int((labels == k).sum()) for k in range(len(class_names))},
      )
    (workdir / "selection.json").write_text(json.dumps(summary, indent=2))
    print(
      f"jaxfer.select: kept {len(idx)} of {len(pool)} faces: "
      + ", ".join(f"{n} {v}" for n, v in summary["per_class"].items()),
      flush=True,
    )
    for k, v in counts.items():
      print(f"  {k}: {v}", flush=True)
  return summary


def _curves(rule, table, banned, num_classes: int) -> dict:
  """Precision of the best n eligible faces of each class, n = 1.."""
  thr = rules_lib.thresholds(
    rule, table["confidence"], table["pred"], table["valid"], num_classes
  )
  ok = rules_lib.eligible(rule, table, thr) & ~np.isin(
    table["hash"], np.asarray(list(banned), np.uint64)
  )
  scores = rules_lib.scores_of(rule, table)
  out = {}
  for k in range(num_classes):
    rows = np.flatnonzero(ok & (table["pred"] == k))
    rows = rows[np.lexsort((table["index"][rows], -scores[rows]))]
    hits = np.cumsum(table["true_label"][rows] == k)
    out[k] = hits / np.arange(1, len(rows) + 1)
  return out
