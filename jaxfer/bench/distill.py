"""`python -m jaxfer.bench distill`: one distillation outer step against T
plain training steps.

For each T, one outer step (the meta-gradient of the real-batch loss
through T inner steps) as a Python unroll with and without `jax.checkpoint`
per step (`--ts`) and as a `lax.scan` with it (`--scan_ts`, compile time
flat in T), against one plain inner training step on the same synthetic
batch; every row compiled first, then timed call by call in `rounds`
rounds of `steps` calls (`measure.time_rounds`): each ratio is the median
of its per-round ratios, with the min-max over rounds beside it.
`--steps=0` compiles only (memory figures, no times).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxfer import models
from jaxfer.bench import measure
from jaxfer.meta import distillation
from jaxfer.meta import unroll
from jaxfer.methods import distill as distill_method


def run(
  config,
  steps: int,
  ts=(10, 30, 100),
  scan_ts=(10, 30, 100, 300),
  rounds: int = 1,
) -> dict:
  """Measures every row (see the module docstring); prints a table."""
  d, cfg = config.distill, config.data
  c, n = cfg.num_classes, d.images_per_class
  model = models.build(config.model, c)
  rng = np.random.default_rng(0)
  shape = (cfg.image_size, cfg.image_size, cfg.channels)
  images = jnp.asarray(rng.normal(size=(c * n,) + shape), jnp.float32)
  labels = jnp.repeat(jnp.arange(c), n)
  real = {
    "image": jnp.asarray(
      rng.normal(size=(cfg.batch_size,) + shape), jnp.float32
    ),
    "label": jnp.asarray(rng.integers(0, c, cfg.batch_size)),
  }
  tx = optax.sgd(1.0, momentum=d.inner_momentum or None)
  init = distillation.fresh(jax.random.key(0), model, images[:1], tx)
  hp0 = distill_method.hyper(config)
  target = jax.nn.one_hot(labels, c)
  plain = lambda net: unroll.train_step(
    net,
    {"image": images, "target": target},
    loss_fn=lambda p, s, b: distillation.soft_loss(
      p, s, b, apply_fn=model.apply
    ),
    tx=tx,
    lr_scale=0.01,
  )[0]
  facts, calls = {}, {}
  facts["plain"], calls["plain"] = measure.compile_call(plain, (init,))
  out = {
    "devices": [str(x) for x in jax.devices()],
    "model": config.model.to_dict(),
    "synthetic_images": c * n,
    "real_batch": cfg.batch_size,
    "rows": {},
  }
  for t in sorted(set(ts) | set(scan_ts)):
    forms = []
    if t in ts:
      forms += [
        ("python", dict(remat=False, scan=False)),
        ("python+remat", dict(remat=True, scan=False)),
      ]
    if t in scan_ts:
      forms.append(("scan+remat", dict(remat=True, scan=True)))
    for form, kw in forms:
      hp = dataclasses.replace(
        hp0, steps_per_epoch=1, epochs=t, objective="unroll", **kw
      )
      learned = {
        "images": images,
        "raw_lrs": jnp.full((t,), distill_method.softplus_inverse(0.01)),
        "label_logits": 5.0 * target,
      }
      grad = jax.value_and_grad(
        lambda lrn, hp=hp: distillation.unroll_loss(
          lrn, labels, init, real, None, apply_fn=model.apply, tx=tx, hp=hp
        )
      )
      name = f"T={t} {form}"
      facts[name], calls[name] = measure.compile_call(grad, (learned,))
      facts[name]["inner_steps"] = t
      print(f"compiled {name}: {facts[name]['compile_sec']:.0f} s", flush=True)
  times = measure.time_rounds(calls, steps, rounds)
  out["rounds"], out["steps_per_round"] = rounds if steps else 0, steps
  base = facts.pop("plain")
  base["median_sec"] = measure.median(times["plain"])
  base["round_medians_sec"] = measure.round_medians(times["plain"])
  out["plain_step"] = base
  print(
    f"plain inner step on {c * n} images: {base['median_sec'] * 1e3:.1f}"
    f" ms, {base['memory_bytes'] / 2**20:.0f} MiB"
  )
  print(
    f"{'outer step':<22}{'median s':>10}{'/ (T x plain) (rounds)':>25}"
    f"{'XLA MiB':>9}{'compile s':>11}"
  )
  for name, r in facts.items():
    r["median_sec"] = measure.median(times[name])
    r["round_medians_sec"] = measure.round_medians(times[name])
    s = measure.ratio_spread(times[name], times["plain"])
    r["over_t_plain_spread"] = {k: v / r["inner_steps"] for k, v in s.items()}
    r["over_t_plain"] = r["over_t_plain_spread"]["median"]
    out["rows"][name] = r
    print(
      f"{name:<22}{r['median_sec']:>10.3f}"
      f"{measure.spread_text(r['over_t_plain_spread']):>25}"
      f"{r['memory_bytes'] / 2**20:>9.0f}{r['compile_sec']:>11.1f}"
    )
  return out
