"""The selection pass: a face pool streamed through a primitive model.

`run(config, workdir)` serves `python -m jaxfer.select`, the omni pipeline
and the tests. It restores the primitive model (`config.select.model_workdir`,
a jaxfer.main workdir), builds class prototypes from the labeled set that
model was trained on, then streams the pool (`config.select.pool`) through
one jitted scoring function over the device mesh (every process reads its
own part of each global batch) and writes score tables to
``<workdir>/scores/chunk_<k>.npz``, one per `chunk_batches` global batches,
atomically. Memory stays flat in the pool size. A killed pass resumes at
the first missing chunk and ends with the same tables. Then
`jaxfer.mining.rules` picks the faces, and the mined set is written to
``<workdir>/mined/`` (`jaxfer.data.mined`), with ``selection.json``.
"""

import functools
import hashlib
import json
import os
import pathlib

import jax
import numpy as np
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxfer import parallel
from jaxfer import report
from jaxfer import restore
from jaxfer.data import build as data_build
from jaxfer.data import mined as mined_lib
from jaxfer.data import transforms
from jaxfer.data.sources import DataError
from jaxfer.mining import rules as rules_lib
from jaxfer.mining import score as score_lib

_TABLE = ("index", "valid", "confidence", "pred", "proto", "similarity",
          "max_similarity", "hash", "identity")


def pixels(image, size, channels: int) -> np.ndarray:
  """The uint8 face the model sees (before normalisation)."""
  return np.ascontiguousarray(transforms.resize(
      transforms.to_channels(image, channels), size))


def _blank(size, channels: int) -> np.ndarray:
  return pixels(np.zeros((1, 1, channels), np.uint8), size, channels) * 0


def pixel_hash(px: np.ndarray) -> np.uint64:
  """64 bits of BLAKE2b over a face's shape and pixels."""
  h = hashlib.blake2b(px.tobytes(), digest_size=8,
                      person=str(px.shape).encode()[:16])
  return np.uint64(int.from_bytes(h.digest(), "little"))


def _unwrap(pool, i: int):
  """(innermost source, its index) of pool item i through the wrappers."""
  while True:
    if hasattr(pool, "indices"):                # Subset
      pool, i = pool.parent, int(pool.indices[i])
    elif hasattr(pool, "parent"):               # Unlabeled, CenterCropped
      pool = pool.parent
    else:
      return pool, i


def source_id(pool, i: int) -> str:
  src, j = _unwrap(pool, int(i))
  if hasattr(src, "source_id"):
    return src.source_id(j)
  if hasattr(src, "paths"):
    return src.paths[j]
  return f"{src.name} row {j}"


def identities(pool) -> np.ndarray:
  """int32 identity per pool face (-1 unknown): top-level folder or MID."""
  out = np.full(len(pool), -1, np.int32)
  src, _ = _unwrap(pool, 0)
  if getattr(src, "identities", None) is None:
    return out
  for i in range(len(pool)):
    s, j = _unwrap(pool, i)
    out[i] = s.identities[j]
  return out


def _pool_batches(pool, tf, *, start: int, stop: int, batch_size: int,
                  on_bad: str, size, channels: int):
  """Yields this process's part of global batches start..stop-1 of the pool:
  image, mask (1 real, 0 padding), valid (0: undecodable, skipped), hash."""
  import grain  # pylint: disable=g-import-not-at-top
  pc, pi = jax.process_count(), jax.process_index()
  local, n = batch_size // pc, len(pool)

  def element(k: int):
    e = (k // local) * batch_size + pi * local + k % local
    valid = np.float32(1)
    try:
      px = pixels(pool[min(e, n - 1)]["image"], size, channels)
    except DataError:
      if on_bad != "skip":
        raise
      px, valid = _blank(size, channels), 0
    h = int(pixel_hash(px))
    return {"image": tf({"image": px})["image"], "mask": np.float32(e < n),
            "valid": np.float32(valid), "hash_lo": np.uint32(h & 0xFFFFFFFF),
            "hash_hi": np.uint32(h >> 32)}

  ds = grain.MapDataset.range(start * local, stop * local).map(element)
  return iter(ds.batch(local).to_iter_dataset(
      grain.ReadOptions(num_threads=4, prefetch_buffer_size=4)))


def _features(feat_fn, variables, src, tf, *, batch_size, size,
              channels, sharded):
  """Unit features and labels of a labeled source (for prototypes, k-NN)."""
  feats, labels, hashes = [], [], []
  n = len(src)
  for start in range(0, n, batch_size):
    rows = np.minimum(np.arange(start, start + batch_size), n - 1)
    items = [src[int(r)] for r in rows]
    px = [pixels(it["image"], size, channels) for it in items]
    x = np.stack([tf({"image": p})["image"] for p in px])
    x = jax.make_array_from_callback(x.shape, sharded, lambda i, x=x: x[i])
    k = min(batch_size, n - start)
    feats.append(np.asarray(feat_fn(variables, x))[:k])
    labels.append(np.array([it["label"] for it in items[:k]], np.int32))
    hashes += [pixel_hash(p) for p in px[:k]]
  return np.concatenate(feats), np.concatenate(labels), hashes


def run(config, workdir: str) -> dict:
  """Scores the pool, selects, writes the mined set; returns the summary."""
  sel = config.select
  workdir = pathlib.Path(workdir).expanduser().absolute()
  scores_dir = workdir / "scores"
  scores_dir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  if not sel.model_workdir:
    raise ValueError("config.select.model_workdir must name the primitive "
                     "model's jaxfer.main workdir")
  pcfg, _, method, state = restore.load(sel.model_workdir, best=sel.best)
  model_name, variables = restore.eval_model(method, state, sel.model)
  d = pcfg.data
  size, ch, c = d.image_size, d.channels, d.num_classes
  tf = functools.partial(_normalize, mean=tuple(d.mean), std=tuple(d.std))
  mesh = parallel.make_mesh()
  parallel.check_divisible("config.select.batch_size", sel.batch_size,
                           mesh.devices.size, "devices")
  repl, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  variables = jax.device_put(variables, repl)
  full, labeled, rest_idx = data_build.labeled_split(d)
  pool = data_build.pool_source(sel.pool, full, rest_idx,
                                "config.select.pool")
  true = (np.asarray(full.labels)[rest_idx] if sel.pool.source == "rest"
          else None)
  evals = {s: data_build.make_source(d, s) for s in d.eval_splits}

  feat_fn = jax.jit(score_lib.features_fn(method.apply), out_shardings=repl)
  kw = dict(batch_size=sel.batch_size, size=size, channels=ch,
            sharded=sharded)
  bank, bank_labels, lab_hashes = _features(feat_fn, variables, labeled, tf,
                                            **kw)
  protos = np.asarray(score_lib.prototypes(bank, bank_labels, c))
  banned = set(lab_hashes)
  for src in evals.values():
    banned.update(_features(feat_fn, variables, src, tf, **kw)[2])
  score = jax.jit(_batch_score(score_lib.score_fn(method.apply, knn=sel.knn)),
                  out_shardings=repl)
  args = jax.device_put((protos, bank, bank_labels), repl)

  fingerprint = dict(pool=pool.name, pool_size=len(pool),
                     model_workdir=str(sel.model_workdir), model=model_name,
                     step=int(np.asarray(state.step)), best=bool(sel.best),
                     batch_size=sel.batch_size, chunk=sel.chunk_batches,
                     knn=sel.knn, features=bool(sel.save_features))
  _check_fingerprint(scores_dir / "pass.json", fingerprint, is_main)
  n, cb = len(pool), sel.chunk_batches
  num_chunks = -(-n // (sel.batch_size * cb))
  done = 0
  while (scores_dir / f"chunk_{done:06d}.npz").exists():
    done += 1
  ident = identities(pool)
  bar = tqdm.tqdm(total=n, initial=min(n, done * cb * sel.batch_size),
                  unit="img", unit_scale=True, disable=not is_main,
                  dynamic_ncols=True, mininterval=2.0, desc="select pass")
  for k in range(done, num_chunks):
    batches = _pool_batches(pool, tf, start=k * cb, stop=min(
        (k + 1) * cb, -(-n // sel.batch_size)), batch_size=sel.batch_size,
                            on_bad=sel.pool.get("on_bad", "error"),
                            size=size, channels=ch)
    cols = {}
    for b, batch in enumerate(batches):
      out = score(variables, {key: jax.make_array_from_process_local_data(
          sharded, v) for key, v in batch.items()}, *args)
      out = {key: np.asarray(v) for key, v in out.items()}
      out["hash"] = (out.pop("hash_hi").astype(np.uint64) << np.uint64(32)
                     | out.pop("hash_lo").astype(np.uint64))
      first = (k * cb + b) * sel.batch_size
      real = out.pop("mask") > 0
      out["index"] = np.arange(first, first + sel.batch_size)
      for key, v in out.items():
        cols.setdefault(key, []).append(v[real])
      bar.update(int(real.sum()))
    table = {key: np.concatenate(v) for key, v in cols.items()}
    table["valid"] = table["valid"] > 0
    table["identity"] = ident[table["index"]]
    if true is not None:
      table["true_label"] = true[table["index"]]
    feature = table.pop("feature")
    if sel.save_features:
      table["feature"] = feature.astype(np.float16)
    if is_main:
      tmp = scores_dir / f"chunk_{k:06d}.tmp.npz"
      np.savez(tmp, **table)
      os.replace(tmp, scores_dir / f"chunk_{k:06d}.npz")
  bar.close()
  return _select(sel, workdir, pool, read_tables(scores_dir), banned,
                 tuple(full.class_names), size, ch, is_main)


def _batch_score(fn):
  """The scoring function on a pass batch, its bookkeeping passed through
  (replicated, so every process sees the whole global batch)."""
  def batch_fn(variables, batch, *args):
    out = fn(variables, batch["image"], *args)
    return {**out, **{k: v for k, v in batch.items() if k != "image"}}
  return batch_fn


def _normalize(item, *, mean, std):
  return {"image": transforms.normalize(item["image"], mean, std)}


def _check_fingerprint(path: pathlib.Path, fingerprint: dict, is_main: bool):
  if path.exists():
    old = json.loads(path.read_text())
    if old != fingerprint:
      changed = sorted(k for k in fingerprint if old.get(k) != fingerprint[k])
      raise ValueError(f"{path.parent} holds a pass with other settings "
                       f"({', '.join(changed)}: {[old.get(k) for k in changed]}"
                       f" -> {[fingerprint[k] for k in changed]}); use "
                       "another workdir")
  elif is_main:
    path.write_text(json.dumps(fingerprint, indent=2))


def read_tables(scores_dir, columns=None) -> dict:
  """The pass's score columns (all chunks, features left out by default)."""
  files = sorted(pathlib.Path(scores_dir).glob("chunk_[0-9]*[0-9].npz"))
  cols = {}
  for f in files:
    with np.load(f) as z:
      for key in columns or [k for k in z.files if k != "feature"]:
        cols.setdefault(key, []).append(z[key])
  return {k: np.concatenate(v) for k, v in cols.items()}


def _rule(sel) -> rules_lib.Rule:
  per_class = tuple(sel.confidence_per_class)
  return rules_lib.Rule(
      confidence=per_class or sel.confidence,
      confidence_quantile=sel.confidence_quantile, agree=sel.agree,
      similarity=sel.similarity, knn_agree=sel.knn_agree,
      knn_share=sel.knn_share, per_class=sel.per_class,
      per_identity=sel.per_identity, score_weight=sel.score_weight)


def _select(sel, workdir, pool, table, banned, class_names, size, ch,
            is_main) -> dict:
  rule = _rule(sel)
  pos, thr, counts = rules_lib.select(rule, table, len(class_names), banned)
  idx = table["index"][pos]
  labels = table["pred"][pos]
  summary = {"counts": counts,
             "thresholds": dict(zip(class_names, map(float, thr))),
             "per_class": {n: int((labels == k).sum())
                           for k, n in enumerate(class_names)},
             "skipped_undecodable": int((~table["valid"]).sum())}
  if "true_label" in table:
    true = table["true_label"][pos]
    summary["precision"] = {
        n: float((true[labels == k] == k).mean()) if (labels == k).any()
        else None for k, n in enumerate(class_names)}
    summary["precision_all"] = float((true == labels).mean()) if len(
        true) else None
  if is_main:
    faces = np.concatenate([_blank(size, ch)[None]] + [
        pixels(pool[int(i)]["image"], size, ch)[None] for i in idx])[1:]
    manifest = {"pool_index": idx,
                "source_id": [source_id(pool, i) for i in idx],
                "identity": table["identity"][pos],
                "confidence": table["confidence"][pos],
                "similarity": table["similarity"][pos],
                "score": rules_lib.scores_of(rule, table)[pos]}
    if "true_label" in table:
      manifest["true_label"] = table["true_label"][pos]
    mined_lib.save(workdir / "mined", images=faces, labels=labels,
                   class_names=class_names, manifest=manifest,
                   sheet_per_class=sel.sheet_per_class, pool=pool.name,
                   rule=dict(sel.to_dict()), selection=summary)
    if "true_label" in table:
      report.precision_curves(
          _curves(rule, table, banned, len(class_names)), class_names,
          workdir / "precision.png",
          marks={k: int((labels == k).sum()) for k in range(len(class_names))})
    (workdir / "selection.json").write_text(json.dumps(summary, indent=2))
    print(f"jaxfer.select: kept {len(idx)} of {len(pool)} faces: " + ", ".join(
        f"{n} {v}" for n, v in summary["per_class"].items()), flush=True)
    for k, v in counts.items():
      print(f"  {k}: {v}", flush=True)
  return summary


def _curves(rule, table, banned, num_classes: int) -> dict:
  """Precision of the best n eligible faces of each class, n = 1.."""
  thr = rules_lib.thresholds(rule, table["confidence"], table["pred"],
                             table["valid"], num_classes)
  ok = rules_lib.eligible(rule, table, thr) & ~np.isin(
      table["hash"], np.asarray(list(banned), np.uint64))
  scores = rules_lib.scores_of(rule, table)
  out = {}
  for k in range(num_classes):
    rows = np.flatnonzero(ok & (table["pred"] == k))
    rows = rows[np.lexsort((table["index"][rows], -scores[rows]))]
    hits = np.cumsum(table["true_label"][rows] == k)
    out[k] = hits / np.arange(1, len(rows) + 1)
  return out
