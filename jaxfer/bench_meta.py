"""Benchmarks of the two meta-gradient engines (`python -m jaxfer.bench
meta` and `... distill`, the latter documented at `run_distill`).

`meta`: the cost of the Meta-Face2Exp feedbacks.

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
`--steps=0` compiles only (memory figures, no times).

On XLA CPU, `jax.checkpoint` in a Python unroll saves no memory with the
default scheduler; `XLA_FLAGS=--xla_cpu_scheduler_type=
CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED` is measured beside it in the README.
"""

import dataclasses
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
  times = []
  if steps:
    state, m = compiled(state, batch, rng)
    jax.block_until_ready(m)
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = compiled(state, batch, rng)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  return {"step_median_sec": statistics.median(times) if times else math.nan,
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


def _timed(fn, args, steps: int) -> dict:
  """Compiles `fn` (a jitted function) on args, then its median time."""
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  if steps:
    jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
  return {"median_sec": statistics.median(times) if times else math.nan,
          "memory_bytes": xla_memory_bytes(compiled),
          "compile_sec": compile_s}


def run_distill(config, steps: int, ts=(10, 30, 100, 300),
                scan_ts=(10, 30)) -> dict:
  """`python -m jaxfer.bench distill`: one outer step (the meta-gradient of
  the real-batch loss through T inner steps) for each T, as a Python unroll
  with and without `jax.checkpoint` per step and as a `lax.scan` with it;
  against one plain inner training step on the same synthetic batch."""
  from jaxfer import unroll  # pylint: disable=g-import-not-at-top
  from jaxfer.methods import distill  # pylint: disable=g-import-not-at-top
  from jaxfer.methods import distillation  # pylint: disable=g-import-not-at-top
  d, cfg = config.distill, config.data
  c, n = cfg.num_classes, d.images_per_class
  model = models.build(config.model, c)
  rng = np.random.default_rng(0)
  shape = (cfg.image_size, cfg.image_size, cfg.channels)
  images = jnp.asarray(rng.normal(size=(c * n,) + shape), jnp.float32)
  labels = jnp.repeat(jnp.arange(c), n)
  real = {"image": jnp.asarray(rng.normal(size=(cfg.batch_size,) + shape),
                               jnp.float32),
          "label": jnp.asarray(rng.integers(0, c, cfg.batch_size))}
  tx = optax.sgd(1.0, momentum=d.inner_momentum or None)
  init = distill.fresh(jax.random.key(0), model, images[:1], tx)
  hp0 = distillation.hyper(config)
  target = jax.nn.one_hot(labels, c)
  plain = jax.jit(lambda net: unroll.train_step(
      net, {"image": images, "target": target},
      loss_fn=lambda p, s, b: distill.soft_loss(p, s, b,
                                                apply_fn=model.apply),
      tx=tx, lr_scale=0.01)[0])
  base = _timed(plain, (init,), steps * 5)
  out = {"devices": [str(x) for x in jax.devices()],
         "model": config.model.to_dict(), "synthetic_images": c * n,
         "real_batch": cfg.batch_size, "plain_step": base, "rows": {}}
  print(f"plain inner step on {c * n} images: {base['median_sec'] * 1e3:.1f}"
        f" ms, {base['memory_bytes'] / 2**20:.0f} MiB")
  print(f"{'outer step':<22}{'median s':>10}{'/ (T x plain)':>15}"
        f"{'MiB':>8}{'compile s':>11}", flush=True)
  for t in ts:
    forms = [("python", dict(remat=False, scan=False)),
             ("python+remat", dict(remat=True, scan=False))]
    if t in scan_ts:
      forms.append(("scan+remat", dict(remat=True, scan=True)))
    for form, kw in forms:
      hp = dataclasses.replace(hp0, steps_per_epoch=1, epochs=t,
                               objective="unroll", **kw)
      learned = {"images": images,
                 "raw_lrs": jnp.full((t,), distillation.softplus_inverse(
                     0.01)),
                 "label_logits": 5.0 * target}
      grad = jax.jit(jax.value_and_grad(lambda l, hp=hp: distill.unroll_loss(
          l, labels, init, real, None, apply_fn=model.apply, tx=tx, hp=hp)))
      r = _timed(grad, (learned,), steps)
      r["over_t_plain"] = r["median_sec"] / (t * base["median_sec"])
      out["rows"][f"T={t} {form}"] = r
      print(f"{f'T={t} {form}':<22}{r['median_sec']:>10.3f}"
            f"{r['over_t_plain']:>15.2f}{r['memory_bytes'] / 2**20:>8.0f}"
            f"{r['compile_sec']:>11.1f}", flush=True)
  return out
