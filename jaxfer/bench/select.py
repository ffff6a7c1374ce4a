r"""`python -m jaxfer.bench select`: the selection pass against the bare
forward pass of the same model, at two pool sizes.

  python -m jaxfer.bench select --config configs/omni_fer2013.py:lfw \
      --out /tmp/bench_select.json

Without `--config.select.model_workdir` the primitive model is the config's
`primitive` trained for one step (throughput does not depend on the
weights). The pool is scored as it is and repeated to `--pool_size` faces
(LFW repeated: the same decode and resize work per face); for each size:
images/s of the whole pass (decode, resize, hash, forward, prototypes,
score tables written to disk) and its peak resident memory above the
process's level before the pass. The bare forward is the jitted model on
device-resident batches of the same faces; the input pipeline alone is the
pass's reading, decoding, resizing and hashing with no device work (on a
CPU-only machine the two share the same cores, so the pass runs near
1 / (1/input + 1/forward); with an accelerator, near the smaller). Also the forward's FLOPs per
face (XLA's cost analysis), for estimates on other hardware, and the time
the measured pass rate gives for MS-Celeb-1M's 5.8M faces.
"""

import pathlib
import tempfile
import threading
import time

import jax
import numpy as np

from jaxfer.data import base
from jaxfer.data import build as data_build
from jaxfer.loop import mine
from jaxfer.loop import train

MSCELEB_FACES = 5_800_000


class _PeakRSS:
  """Samples this process's resident memory in a thread; `peak` in bytes."""

  def __init__(self, every: float = 0.05):
    self.every, self.peak, self._stop = every, 0, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  @staticmethod
  def now() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
      return int(f.read().split()[1]) * 4096

  def _run(self):
    while not self._stop.is_set():
      self.peak = max(self.peak, self.now())
      time.sleep(self.every)

  def __enter__(self):
    self.peak = self.now()
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, self.now())


def _primitive(config, workdir: pathlib.Path) -> str:
  c = config.primitive.copy_and_resolve_references()
  c.total_steps = c.eval_every = c.checkpoint.every = 1
  c.data.eval_splits = c.data.eval_splits[:1]
  c.checkpoint.best_split = c.data.eval_splits[0]
  train.run(c, str(workdir))
  return str(workdir)


def _forward_rate(scorer, pool, batches: int) -> tuple[float, float]:
  """(images/s, FLOPs per face) of the bare jitted forward on
  device-resident batches of the pool's first faces."""
  from jaxfer.mining import pool as pool_lib  # pylint: disable=g-import-not-at-top

  bs = scorer.batch_size
  x = np.stack(
    [
      scorer.transform(
        {
          "image": pool_lib.pixels(
            pool[i % len(pool)]["image"], scorer.size, scorer.channels
          )
        }
      )["image"]
      for i in range(bs * batches)
    ]
  )
  xs = [
    jax.device_put(x[k * bs : (k + 1) * bs], scorer.sharded)
    for k in range(batches)
  ]
  apply = scorer.forward
  compiled = jax.jit(apply).lower(scorer.variables, xs[0]).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  jax.block_until_ready(compiled(scorer.variables, xs[0]))
  t0 = time.perf_counter()
  outs = [compiled(scorer.variables, xb) for xb in xs]
  jax.block_until_ready(outs)
  dt = time.perf_counter() - t0
  return bs * batches / dt, float(cost.get("flops", 0.0)) / bs


def _input_rate(scorer, pool, faces: int) -> float:
  """images/s of the pass's input pipeline alone (read, decode, resize,
  hash, normalise; no device work) over the pool's first faces."""
  bs = scorer.batch_size
  batches = max(1, faces // bs)
  it = mine._pool_batches(
    pool,
    scorer.transform,
    start=0,
    stop=batches,  # pylint: disable=protected-access
    batch_size=bs,
    on_bad="skip",
    size=scorer.size,
    channels=scorer.channels,
  )
  next(it)  # threads started, first batch
  t0 = time.perf_counter()
  n = sum(1 for _ in it)
  return max(n, 1) * bs / (time.perf_counter() - t0)


def run(config, pool_size: int, forward_batches: int = 20) -> dict:
  sel = config.select
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    if not sel.model_workdir:
      with sel.unlocked():
        sel.model_workdir = _primitive(config, tmp / "primitive")
    scorer, _, full, rest_idx, _ = mine.prepare(sel)
    pool = data_build.pool_source(
      sel.pool, full, rest_idx, "config.select.pool"
    )
    fwd, flops = _forward_rate(scorer, pool, forward_batches)
    inp = _input_rate(scorer, pool, min(len(pool), 40 * scorer.batch_size))
    mine.score_pool(
      scorer,
      base.Subset(  # compile first
        pool, np.arange(scorer.batch_size) % len(pool), "warm-up"
      ),
      tmp / "warm",
      chunk_batches=1,
      progress=False,
    )
    rows = []
    sizes = [len(pool)] + ([pool_size] if pool_size > len(pool) else [])
    for n in sizes:
      p = (
        pool
        if n == len(pool)
        else base.Subset(
          pool, np.arange(n) % len(pool), f"{pool.name} x{n / len(pool):.1f}"
        )
      )
      before = _PeakRSS.now()
      with _PeakRSS() as mem:
        t0 = time.perf_counter()
        mine.score_pool(
          scorer,
          p,
          tmp / f"scores_{n}",
          chunk_batches=sel.chunk_batches,
          save_features=sel.save_features,
          progress=False,
        )
        dt = time.perf_counter() - t0
      disk = sum(f.stat().st_size for f in (tmp / f"scores_{n}").iterdir())
      rows.append(
        {
          "pool": p.name,
          "faces": n,
          "seconds": dt,
          "images_per_sec": n / dt,
          "pass_over_forward": n / dt / fwd,
          "peak_rss_above_start_bytes": mem.peak - before,
          "score_table_bytes": disk,
        }
      )
      print(
        f"{p.name}: {n} faces in {dt:.1f} s = {n / dt:.0f} img/s "
        f"({n / dt / fwd:.2f} x the bare forward), peak RSS "
        f"+{(mem.peak - before) / 2**20:.0f} MiB, tables "
        f"{disk / 2**20:.1f} MiB",
        flush=True,
      )
  rate = rows[-1]["images_per_sec"]
  out = {
    "devices": jax.device_count(),
    "platform": jax.devices()[0].platform,
    "batch_size": scorer.batch_size,
    "forward_images_per_sec": fwd,
    "input_images_per_sec": inp,
    "forward_flops_per_face": flops,
    "passes": rows,
    "mscelebs_faces": MSCELEB_FACES,
    "mscelebs_hours_at_pass_rate": MSCELEB_FACES / rate / 3600,
  }
  print(
    f"bare forward: {fwd:.0f} img/s, {flops / 1e6:.1f} MFLOPs per face; "
    f"input pipeline alone: {inp:.0f} img/s; "
    f"5.8M faces at {rate:.0f} img/s: "
    f"{out['mscelebs_hours_at_pass_rate']:.2f} h",
    flush=True,
  )
  return out
