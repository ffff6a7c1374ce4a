"""`python -m jaxfer.bench meta`: the cost of the Meta-Face2Exp feedbacks.

On one model and one batch shape (from the config: model, batch_size, mu,
image size), in one process, every row compiled first and then timed in
turn, round after round: the median step time and the memory XLA
assigns to the compiled step (`measure.xla_memory_bytes`) for the plain
supervised step, the four feedback modes, and `exact` for K = 1, 2, 4, 8
unrolled student updates, as a Python unroll, with `jax.checkpoint` per
step, and as a `lax.scan` with `jax.checkpoint` per step (`--scan_ks`: on XLA CPU a
convolution's backward inside a scan body is one to two orders of
magnitude slower, jax-ml/jax#12868). Every inner step of `exact` sees
the same B labeled and B * mu unlabeled images, so K steps read K * B * mu
unlabeled images; the rows say how many. Ratios are to the supervised step,
taken round by round: each is the median of the per-round ratios, with its
min-max over the rounds beside it (one noisy round cannot make a claim).
`--steps=0` compiles only (memory figures, no times).

On XLA CPU, `jax.checkpoint` in a Python unroll saves no memory with the
default scheduler; `XLA_FLAGS=--xla_cpu_scheduler_type=
CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED` is measured beside it (docs, Benchmarks).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import methods
from jaxfer import models
from jaxfer.bench import measure


def _batch(config, mu: int, rng) -> dict:
  size, ch = config.data.image_size, config.data.channels
  b = config.data.batch_size
  img = lambda n: rng.normal(size=(n, size, size, ch)).astype(np.float32)
  out = {
    "image": img(b),
    "label": rng.integers(0, config.data.num_classes, b).astype(np.int32),
  }
  if mu:
    out["unlabeled_weak"], out["unlabeled_strong"] = img(b * mu), img(b * mu)
    out["unlabeled_index"] = np.arange(b * mu, dtype=np.int32)
  return out


def prepare(config, pool_size: int = 0):
  """Compiles one method's step on a random batch (`pool_size`: the
  unlabeled pool's size, for per-face state).

  Returns (facts, call): `call()` runs one step (feeding the donated state
  back) and waits for it.
  """
  model = models.build(config.model, config.data.num_classes)
  method = methods.build(config, model, config.total_steps, pool_size=pool_size)
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init)(
    jax.random.key(0), jnp.zeros((1, size, size, ch))
  )
  batch = _batch(
    config,
    config.mu if config.method != "supervised" else 0,
    np.random.default_rng(0),
  )
  facts, call = measure.compile_call(
    method.step_at(0), (state, batch, jax.random.key(1)), feed_back=True
  )
  facts["unlabeled_per_step"] = int(
    batch.get("unlabeled_weak", np.zeros(0)).shape[0]
  )
  return facts, call


# DTM rows: the threshold policy's pool (FlexMatch keeps one int32 per
# face): MS-Celeb-1M's 5.8M faces, the scale the issue asks about.
DTM_POOL = 5_800_000


def variants(
  config,
  ks=(1, 2, 4, 8),
  scan_ks=(1, 2),
  dtm_policies=("fixed", "flexmatch", "freematch", "softmatch", "dtm"),
):
  """(row name, config, pool size) for every row of the benchmark."""
  rows = []

  def variant(
    name, method="face2exp", mu_scale=1, pool_size=0, dtm=None, **f2e
  ):
    c = config.copy_and_resolve_references()
    c.method = method
    c.mu = config.mu * mu_scale
    c.face2exp.update(f2e)  # nested sections (exact=dict(...)) merge
    if dtm is not None:
      c.dtm.threshold = dtm
    rows.append((name, c, pool_size))

  variant("supervised", method="supervised")
  for mode in ("first_order", "score_function", "exact_jvp"):
    variant(mode, feedback=mode)
  for k in ks:
    variant(
      f"exact K={k}", mu_scale=k, feedback="exact", exact=dict(unroll_steps=k)
    )
    variant(
      f"exact K={k} remat",
      mu_scale=k,
      feedback="exact",
      exact=dict(unroll_steps=k, remat=True),
    )
    if k in scan_ks:
      variant(
        f"exact K={k} remat+scan",
        mu_scale=k,
        feedback="exact",
        exact=dict(unroll_steps=k, remat=True, scan=True),
      )
  for policy in dtm_policies:
    variant(f"dtm {policy}", method="dtm", dtm=policy, pool_size=DTM_POOL)
  return rows


def run(
  config,
  steps: int,
  ks=(1, 2, 4, 8),
  scan_ks=(1, 2),
  dtm_policies=("fixed", "flexmatch", "freematch", "softmatch", "dtm"),
  rounds: int = 1,
) -> dict:
  """Measures every row; prints a table as it goes. `dtm <policy>` rows:
  the DTM step with each threshold policy (pool of `DTM_POOL` faces); their
  `policy_overhead` is the time over the `dtm fixed` row (FixMatch's rule
  costs one comparison)."""
  out = {
    "devices": [str(d) for d in jax.devices()],
    "model": config.model.to_dict(),
    "batch_size": config.data.batch_size,
    "mu": config.mu,
    "image_size": config.data.image_size,
    "rows": {},
  }
  facts, calls = {}, {}
  for name, c, pool in variants(config, ks, scan_ks, dtm_policies):
    facts[name], calls[name] = prepare(c, pool)
    print(f"compiled {name}: {facts[name]['compile_sec']:.0f} s", flush=True)
  times = measure.time_rounds(calls, steps, rounds)
  out["rounds"], out["steps_per_round"] = rounds if steps else 0, steps
  print(
    f"{'step':<26}{'unlab.':>7}{'median s':>10}{'x sup (rounds)':>24}"
    f"{'XLA MiB':>10}{'x sup':>7}{'GFLOP':>8}",
    flush=True,
  )
  base = next(iter(facts))
  for name, r in facts.items():
    r["step_median_sec"] = measure.median(times[name])
    r["round_medians_sec"] = measure.round_medians(times[name])
    r["time_ratio_spread"] = measure.ratio_spread(times[name], times[base])
    r["time_ratio"] = r["time_ratio_spread"]["median"]
    r["memory_ratio"] = r["memory_bytes"] / facts[base]["memory_bytes"]
    out["rows"][name] = r
    print(
      f"{name:<26}{r['unlabeled_per_step']:>7}"
      f"{r['step_median_sec']:>10.3f}"
      f"{' ' + measure.spread_text(r['time_ratio_spread']):>24}"
      f"{r['memory_bytes'] / 2**20:>10.0f}"
      f"{r['memory_ratio']:>7.2f}"
      f"{(r['flops'] or float('nan')) / 1e9:>8.1f}",
      flush=True,
    )
  rows = out["rows"]
  spread = measure.ratio_spread(times["exact_jvp"], times["first_order"])
  out["exact_jvp_over_first_order"] = spread["median"]
  out["exact_jvp_over_first_order_spread"] = spread
  print(
    f"exact_jvp / first_order time: {measure.spread_text(spread)} "
    f"(median and min-max of {out['rounds']} rounds; goal <= 1.1x)"
  )
  fo, jvp = rows["first_order"]["flops"], rows["exact_jvp"]["flops"]
  out["exact_jvp_over_first_order_flops"] = jvp / fo if fo and jvp else None
  if fo and jvp:
    print(f"exact_jvp / first_order XLA FLOPs: {jvp / fo:.3f}x")
  if "dtm fixed" in rows:
    for p in dtm_policies:
      r = rows[f"dtm {p}"]
      s = measure.ratio_spread(times[f"dtm {p}"], times["dtm fixed"])
      r["policy_overhead"] = s["median"] - 1
      r["policy_overhead_spread"] = {k: v - 1 for k, v in s.items()}
      print(
        f"dtm {p}: {100 * r['policy_overhead']:+.1f}% over the fixed "
        f"threshold ({100 * (s['min'] - 1):+.1f}% to "
        f"{100 * (s['max'] - 1):+.1f}% over rounds; goal < 5%)"
      )
  return out
