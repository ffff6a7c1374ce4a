r"""`python -m jaxfer.bench train`: the input pipeline against the step.

  python -m jaxfer.bench train --config configs/supervised_fer2013.py \
      --config.data.strong_augment=True --out /tmp/bench_train.json

Images/s of the input pipeline (the config's own Grain stream,
augmentation included) and of the jitted training step on batches of the
same shape, with their ratio: above 1 the pipeline keeps up.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxfer import methods
from jaxfer import models
from jaxfer.core import parallel
from jaxfer.data import build as data_build


def bench_pipeline(config, steps: int) -> dict:
  """Images/s of the config's training stream and its batch shapes."""
  data = data_build.build(config)
  it = iter(data.train)
  batch = next(it)  # warm-up, thread start
  t0 = time.perf_counter()
  for _ in range(steps):
    batch = next(it)
  dt = time.perf_counter() - t0
  return {
    "pipeline_images_per_sec": steps * config.data.batch_size / dt,
    "batch_shapes": {k: list(np.shape(v)) for k, v in batch.items()},
  }


def bench_step(config, batch_shapes: dict, steps: int) -> dict:
  """Median time of the method's step on the mesh of all devices."""
  model = models.build(config.model, config.data.num_classes)
  method = methods.build(config, model, config.total_steps)
  runner = parallel.MeshRunner(method.step_at(0), parallel.make_mesh())
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init)(
    jax.random.key(0), jnp.zeros((1, size, size, ch))
  )
  rng = np.random.default_rng(0)
  batch = {
    k: (
      rng.integers(0, config.data.num_classes, s).astype(np.int32)
      if k == "label"
      else rng.normal(size=s).astype(np.float32)
    )
    for k, s in batch_shapes.items()
  }
  batch = runner.put_batch(batch)
  step = runner.step
  state, m = step(state, batch, jax.random.key(1))
  jax.block_until_ready(m)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = step(state, batch, jax.random.key(1))
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  med = statistics.median(times)
  return {
    "step_median_sec": med,
    "step_images_per_sec": config.data.batch_size / med,
  }


def image_shapes(config) -> dict:
  """The labeled batch's shapes for `config`."""
  b, s, c = (
    config.data.batch_size,
    config.data.image_size,
    config.data.channels,
  )
  return {"image": [b, s, s, c], "label": [b]}


def run(config, steps: int) -> dict:
  """Pipeline and step side by side; prints the table."""
  out = {
    "devices": [str(d) for d in jax.devices()],
    "model": config.model.to_dict(),
    "batch_size": config.data.batch_size,
    "strong_augment": config.data.strong_augment,
  }
  out.update(bench_pipeline(config, steps * 5))
  out.update(bench_step(config, out["batch_shapes"], steps))
  out["pipeline_over_step"] = (
    out["pipeline_images_per_sec"] / out["step_images_per_sec"]
  )
  print(f"{'what':<28}{'images/s':>12}")
  print(f"{'input pipeline':<28}{out['pipeline_images_per_sec']:>12.0f}")
  print(f"{'train step (median)':<28}{out['step_images_per_sec']:>12.0f}")
  verdict = (
    "the pipeline keeps up"
    if out["pipeline_over_step"] > 1
    else "THE PIPELINE IS THE BOTTLENECK"
  )
  print(f"pipeline / step = {out['pipeline_over_step']:.1f}x ({verdict})")
  return out
