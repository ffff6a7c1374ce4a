"""Benchmarks of the two meta-gradient engines (`python -m jaxfer.bench
meta` and `... distill`, the latter documented at `run_distill`).

`meta`: the cost of the Meta-Face2Exp feedbacks.

On one model and one batch shape (from the config: model, batch_size, mu,
image size), in one process, every row compiled first and then timed in
turn, round after round: the median step time and the memory XLA
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


def prepare(config):
  """Compiles one method's step on a random batch.

  Returns (facts, call): `call()` runs one step (feeding the donated state
  back) and waits for it.
  """
  model = models.build(config.model, config.data.num_classes)
  method = methods.build(config, model, config.total_steps)
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init)(jax.random.key(0),
                               jnp.zeros((1, size, size, ch)))
  batch = _batch(config, config.mu if config.method != "supervised" else 0,
                 np.random.default_rng(0))
  rng = jax.random.key(1)
  t0 = time.perf_counter()
  compiled = jax.jit(method.step, donate_argnums=0).lower(
      state, batch, rng).compile()
  facts = {"peak_memory_bytes": xla_memory_bytes(compiled),
           "compile_sec": time.perf_counter() - t0,
           "unlabeled_per_step": int(batch.get("unlabeled_weak",
                                               np.zeros(0)).shape[0])}
  holder = {"state": state}

  def call():
    holder["state"], m = compiled(holder["state"], batch, rng)
    jax.block_until_ready(m)
  return facts, call


def time_round_robin(calls: dict, steps: int) -> dict:
  """Median seconds per call, timing the calls in turn, `steps` rounds
  after one warm-up round: a slow drift of the machine's load touches
  every row alike, so their ratios hold."""
  times = {name: [] for name in calls}
  for r in range(steps + 1 if steps else 0):
    for name, call in calls.items():
      t0 = time.perf_counter()
      call()
      if r:
        times[name].append(time.perf_counter() - t0)
  return {name: statistics.median(t) if t else math.nan
          for name, t in times.items()}


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
  facts, calls = {}, {}
  for name, c in variants(config, ks, scan_ks):
    facts[name], calls[name] = prepare(c)
    print(f"compiled {name}: {facts[name]['compile_sec']:.0f} s", flush=True)
  medians = time_round_robin(calls, steps)
  print(f"{'step':<26}{'unlab.':>7}{'median s':>10}{'x sup':>7}"
        f"{'XLA MiB':>10}{'x sup':>7}", flush=True)
  base = next(iter(facts))
  for name, r in facts.items():
    r["step_median_sec"] = medians[name]
    r["time_ratio"] = medians[name] / medians[base]
    r["memory_ratio"] = (r["peak_memory_bytes"]
                         / facts[base]["peak_memory_bytes"])
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


def _compiled(fn, args):
  """(facts, call) of a jitted function on fixed arguments."""
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  facts = {"memory_bytes": xla_memory_bytes(compiled),
           "compile_sec": time.perf_counter() - t0}
  return facts, lambda: jax.block_until_ready(compiled(*args))


def run_distill(config, steps: int, ts=(10, 30, 100),
                scan_ts=(10, 30, 100, 300)) -> dict:
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
  facts, calls = {}, {}
  facts["plain"], calls["plain"] = _compiled(plain, (init,))
  out = {"devices": [str(x) for x in jax.devices()],
         "model": config.model.to_dict(), "synthetic_images": c * n,
         "real_batch": cfg.batch_size, "rows": {}}
  for t in sorted(set(ts) | set(scan_ts)):
    forms = []
    if t in ts:
      forms += [("python", dict(remat=False, scan=False)),
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
      name = f"T={t} {form}"
      facts[name], calls[name] = _compiled(grad, (learned,))
      facts[name]["inner_steps"] = t
      print(f"compiled {name}: {facts[name]['compile_sec']:.0f} s",
            flush=True)
  medians = time_round_robin(calls, steps)
  base = facts.pop("plain")
  base["median_sec"] = medians["plain"]
  out["plain_step"] = base
  print(f"plain inner step on {c * n} images: {base['median_sec'] * 1e3:.1f}"
        f" ms, {base['memory_bytes'] / 2**20:.0f} MiB")
  print(f"{'outer step':<22}{'median s':>10}{'/ (T x plain)':>15}"
        f"{'XLA MiB':>9}{'compile s':>11}")
  for name, r in facts.items():
    r["median_sec"] = medians[name]
    r["over_t_plain"] = r["median_sec"] / (r["inner_steps"]
                                           * base["median_sec"])
    out["rows"][name] = r
    print(f"{name:<22}{r['median_sec']:>10.3f}{r['over_t_plain']:>15.2f}"
          f"{r['memory_bytes'] / 2**20:>9.0f}{r['compile_sec']:>11.1f}")
  return out
