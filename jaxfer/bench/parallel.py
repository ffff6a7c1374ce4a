r"""`python -m jaxfer.bench parallel`: the step on 1, 2 and 4 devices.

  python -m jaxfer.bench parallel --config configs/default.py \
      --out /tmp/bench_parallel.json

The supervised step's median time on 1, 2 and 4 forced CPU devices (mesh
path, same global batch), and the max abs difference of every state array
after 3 steps between 1 device and 4 devices by the mesh path, jax.pmap
(and jax.shard_map), for the cases of `jaxfer.loop.testing.PARALLEL_CASES`
(supervised, Meta-Face2Exp, distillation). Each device count runs in its
own process (XLA fixes it at start-up).
"""

import json
import os
import subprocess
import sys

_EQUALITY = (
  "import json; from jaxfer.loop import testing; "
  "print('RESULT' + json.dumps(testing.parallel_param_diffs()))"
)


def _in_process_with_devices(n: int, args: list[str]) -> dict:
  env = {
    **os.environ,
    "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
  }
  p = subprocess.run(
    [sys.executable, *args],
    env=env,
    capture_output=True,
    text=True,
    check=False,
  )
  if "RESULT" not in p.stdout:
    raise RuntimeError(f"{args} on {n} devices failed:\n{p.stderr[-3000:]}")
  return json.loads(p.stdout.split("RESULT")[1])


def run(config_arg: list[str], steps: int) -> dict:
  """Step times per device count and the 4-device state differences.

  Args:
    config_arg: the command line's config flags, passed to each process.
    steps: timed steps per device count.
  """
  out = {"step_time": {}}
  for n in (1, 2, 4):
    r = _in_process_with_devices(
      n, ["-m", "jaxfer.bench", "step", *config_arg, f"--steps={steps}"]
    )
    out["step_time"][n] = r
    print(
      f"{n} device(s): median step {r['step_median_sec'] * 1000:.0f} ms, "
      f"{r['step_images_per_sec']:.0f} images/s",
      flush=True,
    )
  out["max_abs_param_diff_vs_1_device"] = _in_process_with_devices(
    4, ["-c", _EQUALITY]
  )
  for k, v in out["max_abs_param_diff_vs_1_device"].items():
    what = (
      "how far 3 steps moved the state"
      if k.endswith("moved")
      else "max |state - 1-device state|"
    )
    print(f"4 devices, {k}: {what} = {v:.2e}")
  return out
