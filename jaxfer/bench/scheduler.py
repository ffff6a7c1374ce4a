r"""`python -m jaxfer.bench scheduler`: what XLA CPU's memory-optimising
scheduler costs a training step.

  python -m jaxfer.bench scheduler --config configs/supervised_fer2013.py \
      --steps 5 --rounds 3 --out /tmp/bench_scheduler.json

The config's step (`bench step`: the method's step on the mesh of all
devices, a random batch) in one process with XLA's default scheduler and
in one with `jaxfer.core.xla_cpu.MEMORY_SCHEDULER`, alternating, `rounds`
times each (XLA reads its flags once per process, so the two cannot share
one). Each round's ratio is memory-optimised / default step time; the
median and the min-max over rounds are printed. This is the figure that
decides when the training entry points set the flag (`jaxfer.core.xla_cpu`).
"""

import json
import os
import subprocess
import sys

from jaxfer.bench import measure
from jaxfer.core import xla_cpu

SETTINGS = {"default": "", "memory-optimised": xla_cpu.MEMORY_SCHEDULER}


def _step_in_process(args: list[str], xla_flags: str) -> dict:
  env = {**os.environ, "XLA_FLAGS": xla_flags}
  p = subprocess.run(
    [sys.executable, "-m", "jaxfer.bench", "step", *args],
    env=env,
    capture_output=True,
    text=True,
    check=False,
  )
  if "RESULT" not in p.stdout:
    raise RuntimeError(
      f"bench step with XLA_FLAGS={xla_flags!r} failed:\n{p.stderr[-3000:]}"
    )
  return json.loads(p.stdout.split("RESULT")[1])


def run(config_args: list[str], steps: int, rounds: int = 3) -> dict:
  """Step medians under both schedulers, alternating processes.

  Args:
    config_args: the command line's config flags, passed to each process.
    steps: timed steps per process.
    rounds: processes per setting.
  """
  out = {
    "flag": xla_cpu.MEMORY_SCHEDULER,
    "rounds": rounds,
    "steps_per_round": steps,
    "step_median_sec": {},
  }
  times = {name: [] for name in SETTINGS}
  for r in range(rounds):
    for name, flag in SETTINGS.items():
      res = _step_in_process([*config_args, f"--steps={steps}"], flag)
      times[name].append([res["step_median_sec"]])
      print(
        f"round {r + 1}, {name}: median step "
        f"{res['step_median_sec'] * 1000:.0f} ms",
        flush=True,
      )
  for name in SETTINGS:
    out["step_median_sec"][name] = measure.round_medians(times[name])
  s = measure.ratio_spread(times["memory-optimised"], times["default"])
  out["memory_optimised_over_default"] = s
  print(
    f"memory-optimised / default step time: {measure.spread_text(s)} "
    f"(median and min-max of {rounds} rounds)"
  )
  return out
