"""`python -m jaxfer.bench meta`: the cost of the Meta-Face2Exp feedbacks.

On one model and one batch shape (from the config: model, batch_size, mu,
image size), in one process: the median step time and the memory XLA
assigns to the compiled step (arguments, outputs and the peak of live
temporaries, from `Compiled.memory_analysis()`; the same on CPU and GPU) for the plain supervised step, the four
feedback modes, and `exact` for K = 1, 2, 4, 8 unrolled student updates,
as a Python unroll, with `jax.checkpoint` per step, and as a
`lax.scan` with `jax.checkpoint` per step (`--scan_ks`: on XLA CPU a
convolution's backward inside a scan body is one to two orders of
magnitude slower, jax-ml/jax#12868). Every inner step of `exact` sees
the same B labeled and B * mu unlabeled images, so K steps read K * B * mu
unlabeled images; the rows say how many. Ratios are to the supervised step.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import methods
from jaxfer import models


def _batch(config, mu: int, rng) -> dict:
  size, ch = config.data.image_size, config.data.channels
  b = config.data.batch_size
  img = lambda n: rng.normal(size=(n, size, size, ch)).astype(np.float32)
  out = {"image": img(b),
         "label": rng.integers(0, config.data.num_classes, b).astype(
             np.int32)}
  if mu:
    out["unlabeled_weak"], out["unlabeled_strong"] = img(b * mu), img(b * mu)
  return out


def xla_memory_bytes(compiled) -> int:
  """Memory XLA assigns to a compiled program: arguments + outputs +
  temporaries (its temp buffer is sized to the peak of live temporaries),
  less donated arguments reused as outputs."""
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)


def measure(config, steps: int) -> dict:
  """Compiles and times one method's step on a random batch."""
  model = models.build(config.model, config.data.num_classes)
  method = methods.build(config, model, config.total_steps)
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init)(jax.random.key(0),
                               jnp.zeros((1, size, size, ch)))
  batch = _batch(config, config.mu if config.method != "supervised" else 0,
                 np.random.default_rng(0))
  step = jax.jit(method.step, donate_argnums=0)
  rng = jax.random.key(1)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch, rng).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  state, m = compiled(state, batch, rng)
  jax.block_until_ready(m)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = compiled(state, batch, rng)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  return {"step_median_sec": statistics.median(times),
          "peak_memory_bytes": xla_memory_bytes(compiled),
          "temp_bytes": int(mem.temp_size_in_bytes),
          "compile_sec": compile_s,
          "unlabeled_per_step": int(batch.get("unlabeled_weak",
                                              np.zeros(0)).shape[0])}


def variants(config, ks=(1, 2, 4, 8), scan_ks=(1, 2)):
  """(row name, config) for every row of the benchmark."""
  rows = []

  def variant(name, method="face2exp", mu_scale=1, **f2e):
    c = config.copy_and_resolve_references()
    c.method = method
    c.mu = config.mu * mu_scale
    for k, v in f2e.items():
      c.face2exp[k] = v
    rows.append((name, c))

  variant("supervised", method="supervised")
  for mode in ("first_order", "score_function", "exact_jvp"):
    variant(mode, feedback=mode)
  for k in ks:
    variant(f"exact K={k}", mu_scale=k, feedback="exact", unroll_steps=k)
    variant(f"exact K={k} remat", mu_scale=k, feedback="exact",
            unroll_steps=k, remat=True)
    if k in scan_ks:
      variant(f"exact K={k} remat+scan", mu_scale=k, feedback="exact",
              unroll_steps=k, remat=True, scan=True)
  return rows


def run(config, steps: int, ks=(1, 2, 4, 8), scan_ks=(1, 2)) -> dict:
  """Measures every row; prints a table as it goes."""
  out = {"devices": [str(d) for d in jax.devices()],
         "model": config.model.to_dict(),
         "batch_size": config.data.batch_size, "mu": config.mu,
         "image_size": config.data.image_size, "rows": {}}
  print(f"{'step':<26}{'unlab.':>7}{'median s':>10}{'x sup':>7}"
        f"{'peak MiB':>10}{'x sup':>7}", flush=True)
  base = None
  for name, c in variants(config, ks, scan_ks):
    r = measure(c, steps)
    base = base or r
    r["time_ratio"] = r["step_median_sec"] / base["step_median_sec"]
    r["memory_ratio"] = r["peak_memory_bytes"] / base["peak_memory_bytes"]
    out["rows"][name] = r
    print(f"{name:<26}{r['unlabeled_per_step']:>7}"
          f"{r['step_median_sec']:>10.3f}{r['time_ratio']:>7.2f}"
          f"{r['peak_memory_bytes'] / 2**20:>10.0f}"
          f"{r['memory_ratio']:>7.2f}", flush=True)
  rows = out["rows"]
  out["exact_jvp_over_first_order"] = (rows["exact_jvp"]["step_median_sec"]
                                       / rows["first_order"]["step_median_sec"])
  print(f"exact_jvp / first_order time: "
        f"{out['exact_jvp_over_first_order']:.2f}x (goal <= 1.3x)")
  return out
