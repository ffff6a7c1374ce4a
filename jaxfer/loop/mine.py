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
``<workdir>/mined/`` (`jaxfer.data.sources.mined`), with ``selection.json``.
"""

from collections.abc import Callable
import dataclasses
import functools
import json
import os
import pathlib

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import tqdm

from jaxfer import models
from jaxfer.core import parallel
from jaxfer.data import build as data_build
from jaxfer.data import transforms
from jaxfer.data.base import DataError
from jaxfer.loop import restore
from jaxfer.mining import output
from jaxfer.mining import score as score_lib
from jaxfer.mining.pool import blank
from jaxfer.mining.pool import identities
from jaxfer.mining.pool import pixel_hash
from jaxfer.mining.pool import pixels

_TABLE = (
  "index",
  "valid",
  "confidence",
  "pred",
  "proto",
  "similarity",
  "max_similarity",
  "hash",
  "identity",
)


def _pool_batches(
  pool,
  tf,
  *,
  start: int,
  stop: int,
  batch_size: int,
  on_bad: str,
  size,
  channels: int,
):
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
      px, valid = blank(size, channels), 0
    h = int(pixel_hash(px))
    return {
      "image": tf({"image": px})["image"],
      "mask": np.float32(e < n),
      "valid": np.float32(valid),
      "hash_lo": np.uint32(h & 0xFFFFFFFF),
      "hash_hi": np.uint32(h >> 32),
    }

  ds = grain.MapDataset.range(start * local, stop * local).map(element)
  return iter(
    ds.batch(local).to_iter_dataset(
      grain.ReadOptions(num_threads=4, prefetch_buffer_size=4)
    )
  )


def _features(
  feat_fn, variables, src, tf, *, batch_size, size, channels, sharded
):
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


@dataclasses.dataclass
class Scorer:
  """The primitive model ready to score faces over the mesh."""

  score: Callable  # jitted (variables, batch, *args)
  variables: dict
  args: tuple  # prototypes, k-NN bank and its labels
  transform: Callable  # uint8 face -> normalized input
  size: int
  channels: int
  batch_size: int
  sharded: NamedSharding
  fingerprint: dict  # what the score tables depend on
  forward: Callable  # the model: (variables, x) -> (logits,
  # features)


def prepare(sel):
  """(scorer, primitive config, full train split, rest indices, banned
  hashes) for `config.select`: the model restored, the prototypes (and
  k-NN bank) from its labeled set, the labeled and evaluation faces'
  pixel hashes."""
  if not sel.model_workdir:
    raise ValueError(
      "config.select.model_workdir must name the primitive "
      "model's jaxfer.main workdir"
    )
  pcfg, _, method, state = restore.load(sel.model_workdir, best=sel.best)
  model_name, variables = restore.eval_model(method, state, sel.model)
  apply = models.eval_apply(models.build(pcfg.model, pcfg.data.num_classes))
  d = pcfg.data
  size, ch, c = d.image_size, d.channels, d.num_classes
  tf = functools.partial(_normalize, mean=tuple(d.mean), std=tuple(d.std))
  mesh = parallel.make_mesh()
  parallel.check_divisible(
    "config.select.batch_size", sel.batch_size, mesh.devices.size, "devices"
  )
  repl, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  variables = jax.device_put(variables, repl)
  full, labeled, rest_idx = data_build.labeled_split(d)
  feat_fn = jax.jit(score_lib.features_fn(apply), out_shardings=repl)
  kw = dict(batch_size=sel.batch_size, size=size, channels=ch, sharded=sharded)
  bank, bank_labels, lab_hashes = _features(
    feat_fn, variables, labeled, tf, **kw
  )
  protos = np.asarray(score_lib.prototypes(bank, bank_labels, c))
  banned = set(lab_hashes)
  for split in d.eval_splits:
    banned.update(
      _features(feat_fn, variables, data_build.make_source(d, split), tf, **kw)[
        2
      ]
    )
  score = jax.jit(
    _batch_score(score_lib.score_fn(apply, knn=sel.knn)),
    out_shardings=repl,
  )
  fingerprint = dict(
    model_workdir=str(sel.model_workdir),
    model=model_name,
    step=int(np.asarray(state.step)),
    best=bool(sel.best),
    batch_size=sel.batch_size,
    knn=sel.knn,
  )
  scorer = Scorer(
    score,
    variables,
    jax.device_put((protos, bank, bank_labels), repl),
    tf,
    size,
    ch,
    sel.batch_size,
    sharded,
    fingerprint,
    apply,
  )
  return scorer, pcfg, full, rest_idx, banned


def score_pool(
  scorer: Scorer,
  pool,
  scores_dir,
  *,
  chunk_batches: int,
  on_bad: str = "error",
  save_features: bool = True,
  true_labels=None,
  progress: bool = True,
) -> int:
  """Writes the score tables of `pool` to `scores_dir`, resuming at the
  first missing chunk; returns how many faces this call scored."""
  scores_dir = pathlib.Path(scores_dir)
  scores_dir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  bs, cb, n = scorer.batch_size, chunk_batches, len(pool)
  _check_fingerprint(
    scores_dir / "pass.json",
    dict(
      pool=pool.name,
      pool_size=n,
      chunk=cb,
      features=bool(save_features),
      **scorer.fingerprint,
    ),
    is_main,
  )
  num_batches = -(-n // bs)
  done = 0
  while (scores_dir / f"chunk_{done:06d}.npz").exists():
    done += 1
  ident = identities(pool)
  bar = tqdm.tqdm(
    total=n,
    initial=min(n, done * cb * bs),
    unit="img",
    unit_scale=True,
    disable=not (is_main and progress),
    dynamic_ncols=True,
    mininterval=2.0,
    desc="select pass",
  )
  scored = 0
  for k in range(done, -(-num_batches // cb)):
    batches = _pool_batches(
      pool,
      scorer.transform,
      start=k * cb,
      stop=min((k + 1) * cb, num_batches),
      batch_size=bs,
      on_bad=on_bad,
      size=scorer.size,
      channels=scorer.channels,
    )
    cols, pending = {}, None
    for b, batch in enumerate([*batches, None]):
      # Dispatch batch b before reading batch b - 1's scores back, so the
      # device is not idle while the host copies.
      out = (
        None
        if batch is None
        else scorer.score(
          scorer.variables,
          {
            key: jax.make_array_from_process_local_data(scorer.sharded, v)
            for key, v in batch.items()
          },
          *scorer.args,
        )
      )
      if pending is not None:
        rows = _host_rows(pending, (k * cb + b - 1) * bs, bs)
        for key, v in rows.items():
          cols.setdefault(key, []).append(v)
        bar.update(len(rows["index"]))
        scored += len(rows["index"])
      pending = out
    table = {key: np.concatenate(v) for key, v in cols.items()}
    table["identity"] = ident[table["index"]]
    if true_labels is not None:
      table["true_label"] = true_labels[table["index"]]
    feature = table.pop("feature")
    if save_features:
      table["feature"] = feature.astype(np.float16)
    if is_main:
      tmp = scores_dir / f"chunk_{k:06d}.tmp.npz"
      np.savez(tmp, **table)
      os.replace(tmp, scores_dir / f"chunk_{k:06d}.npz")
  bar.close()
  return scored


def _host_rows(out, first: int, batch_size: int) -> dict:
  """A scored batch on the host: the real rows, the hash re-assembled."""
  out = {key: np.asarray(v) for key, v in out.items()}
  out["hash"] = out.pop("hash_hi").astype(np.uint64) << np.uint64(32) | out.pop(
    "hash_lo"
  ).astype(np.uint64)
  out["index"] = np.arange(first, first + batch_size)
  out["valid"] = out["valid"] > 0
  real = out.pop("mask") > 0
  return {key: v[real] for key, v in out.items()}


def run(config, workdir: str) -> dict:
  """Scores the pool, selects, writes the mined set; returns the summary."""
  sel = config.select
  workdir = pathlib.Path(workdir).expanduser().absolute()
  scorer, pcfg, full, rest_idx, banned = prepare(sel)
  pool = data_build.pool_source(sel.pool, full, rest_idx, "config.select.pool")
  true = (
    np.asarray(full.labels)[rest_idx] if sel.pool.source == "rest" else None
  )
  score_pool(
    scorer,
    pool,
    workdir / "scores",
    chunk_batches=sel.chunk_batches,
    on_bad=sel.pool.on_bad,
    save_features=sel.save_features,
    true_labels=true,
  )
  return output.write(
    sel,
    workdir,
    pool,
    read_tables(workdir / "scores"),
    banned,
    tuple(full.class_names),
    pcfg.data.image_size,
    pcfg.data.channels,
    jax.process_index() == 0,
  )


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
      raise ValueError(
        f"{path.parent} holds a pass with other settings "
        f"({', '.join(changed)}: {[old.get(k) for k in changed]}"
        f" -> {[fingerprint[k] for k in changed]}); use "
        "another workdir"
      )
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
