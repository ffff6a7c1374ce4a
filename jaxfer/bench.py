r"""Benchmarks that print figures measured side by side in one run.

  python -m jaxfer.bench train --config configs/supervised_fer2013.py \
      --config.data.path=../shared/data/fer2013/fer2013.csv.bz2 \
      --config.data.strong_augment=True --out /tmp/bench_train.json

`train`: images/s of the input pipeline (the config's own Grain stream,
augmentation included) and of the jitted training step on batches of the
same shape, with their ratio: above 1 the pipeline keeps up.

  python -m jaxfer.bench parallel --config configs/default.py \
      --out /tmp/bench_parallel.json

`parallel`: the supervised step's median time on 1, 2 and 4 forced CPU
devices (mesh path, same global batch), and the max abs difference of every
state array after 3 steps between 1 device and 4 devices by the mesh path,
jax.pmap (and jax.shard_map), for the cases of
`jaxfer.testing.PARALLEL_CASES` (supervised, Meta-Face2Exp, distillation). Each device count
runs in its own process (XLA fixes it at start-up).

  python -m jaxfer.bench meta --config configs/face2exp_fer2013.py \
      --out /tmp/bench_meta.json

`meta`: time and peak memory of the Meta-Face2Exp feedbacks against the
supervised step (see jaxfer/bench_meta.py).

  python -m jaxfer.bench distill --config configs/distill_fer2013.py \
      --out /tmp/bench_distill.json

`distill`: time and memory of one distillation outer step for T inner steps
(with and without remat) against T plain training steps.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

from jaxfer import methods
from jaxfer import models
from jaxfer import parallel
from jaxfer.data import build as data_build

config_flags.DEFINE_config_file("config", None, "Config file.",
                                lock_config=True)
flags.DEFINE_integer("steps", 10, "Timed steps (after one warm-up step).")
flags.DEFINE_string("out", "", "Write the figures as JSON here too.")
flags.DEFINE_list("ks", ["1", "2", "4", "8"], "meta: unrolled student steps "
                  "K of the exact rows.")
flags.DEFINE_list("scan_ks", ["1", "2"], "meta: the K of the lax.scan rows.")
flags.DEFINE_list("ts", ["10", "30", "100"], "distill: inner steps T of the "
                  "Python-unrolled rows (with and without remat; T = 100 "
                  "compiles for minutes on CPU).")
flags.DEFINE_list("scan_ts", ["10", "30", "100", "300"], "distill: the T of "
                  "the lax.scan + remat rows (compile time flat in T).")


def bench_pipeline(config, steps: int) -> dict:
  data = data_build.build(config)
  it = iter(data.train)
  batch = next(it)                                   # warm-up, thread start
  t0 = time.perf_counter()
  for _ in range(steps):
    batch = next(it)
  dt = time.perf_counter() - t0
  return {"pipeline_images_per_sec": steps * config.data.batch_size / dt,
          "batch_shapes": {k: list(np.shape(v)) for k, v in batch.items()}}


def bench_step(config, batch_shapes: dict, steps: int) -> dict:
  model = models.build(config.model, config.data.num_classes)
  method = methods.build(config, model, config.total_steps)
  runner = parallel.MeshRunner(method.step, parallel.make_mesh())
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init)(jax.random.key(0),
                               jnp.zeros((1, size, size, ch)))
  rng = np.random.default_rng(0)
  batch = {k: (rng.integers(0, config.data.num_classes, s).astype(np.int32)
               if k == "label" else rng.normal(size=s).astype(np.float32))
           for k, s in batch_shapes.items()}
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
  return {"step_median_sec": med,
          "step_images_per_sec": config.data.batch_size / med}


_EQUALITY = ("import json; from jaxfer import testing; "
             "print('RESULT' + json.dumps(testing.parallel_param_diffs()))")


def _in_process_with_devices(n: int, args: list[str]) -> dict:
  env = {**os.environ,
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
  p = subprocess.run([sys.executable, *args], env=env, capture_output=True,
                     text=True, check=False)
  if "RESULT" not in p.stdout:
    raise RuntimeError(f"{args} on {n} devices failed:\n{p.stderr[-3000:]}")
  return json.loads(p.stdout.split("RESULT")[1])


def bench_parallel(config_arg: list[str], steps: int) -> dict:
  out = {"step_time": {}}
  for n in (1, 2, 4):
    r = _in_process_with_devices(
        n, ["-m", "jaxfer.bench", "step", *config_arg, f"--steps={steps}"])
    out["step_time"][n] = r
    print(f"{n} device(s): median step {r['step_median_sec'] * 1000:.0f} ms, "
          f"{r['step_images_per_sec']:.0f} images/s", flush=True)
  out["max_abs_param_diff_vs_1_device"] = _in_process_with_devices(
      4, ["-c", _EQUALITY])
  for k, v in out["max_abs_param_diff_vs_1_device"].items():
    what = ("how far 3 steps moved the state" if k.endswith("moved") else
            "max |state - 1-device state|")
    print(f"4 devices, {k}: {what} = {v:.2e}")
  return out


def _ints(values) -> tuple[int, ...]:
  return tuple(int(v) for v in values if v)


def _write(out: dict) -> None:
  if flags.FLAGS.out:
    with open(flags.FLAGS.out, "w") as f:
      json.dump(out, f, indent=2)


def main(argv):
  if not flags.FLAGS["verbosity"].present:   # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  commands = ("train", "parallel", "meta", "distill", "step")
  if len(argv) != 2 or argv[1] not in commands or flags.FLAGS.config is None:
    raise app.UsageError("usage: python -m jaxfer.bench "
                         "{train,parallel,meta,distill} --config FILE")
  config, steps = flags.FLAGS.config, flags.FLAGS.steps
  if argv[1] == "meta":
    from jaxfer import bench_meta  # pylint: disable=g-import-not-at-top
    ks, scan_ks = _ints(flags.FLAGS.ks), _ints(flags.FLAGS.scan_ks)
    _write(bench_meta.run(config, steps, ks, scan_ks))
    return
  if argv[1] == "distill":
    from jaxfer import bench_meta  # pylint: disable=g-import-not-at-top
    ts, scan_ts = _ints(flags.FLAGS.ts), _ints(flags.FLAGS.scan_ts)
    _write(bench_meta.run_distill(config, steps, ts, scan_ts))
    return
  if argv[1] == "step":              # one device count; used by `parallel`
    shapes = {"image": [config.data.batch_size, config.data.image_size,
                        config.data.image_size, config.data.channels],
              "label": [config.data.batch_size]}
    print("RESULT" + json.dumps(bench_step(config, shapes, steps)))
    return
  if argv[1] == "parallel":
    config_arg, skip = [], False
    for a in sys.argv[2:]:                 # pass the config flags through
      if skip or a.startswith(("--out", "--steps")):
        skip = not skip and "=" not in a and a in ("--out", "--steps")
        continue
      config_arg.append(a)
    _write(bench_parallel(config_arg, steps))
    return
  out = {"devices": [str(d) for d in jax.devices()],
         "model": config.model.to_dict(),
         "batch_size": config.data.batch_size,
         "strong_augment": config.data.strong_augment}
  out.update(bench_pipeline(config, steps * 5))
  out.update(bench_step(config, out["batch_shapes"], steps))
  out["pipeline_over_step"] = (out["pipeline_images_per_sec"]
                               / out["step_images_per_sec"])
  print(f"{'what':<28}{'images/s':>12}")
  print(f"{'input pipeline':<28}{out['pipeline_images_per_sec']:>12.0f}")
  print(f"{'train step (median)':<28}{out['step_images_per_sec']:>12.0f}")
  verdict = ("the pipeline keeps up" if out["pipeline_over_step"] > 1
             else "THE PIPELINE IS THE BOTTLENECK")
  print(f"pipeline / step = {out['pipeline_over_step']:.1f}x ({verdict})")
  _write(out)


if __name__ == "__main__":
  app.run(main)
