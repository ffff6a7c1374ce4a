"""What every benchmark shares: compile a step, read the memory XLA gives
it, and time several rows in turn so that their ratios hold."""

import math
import statistics
import time

import jax


def strict_json(obj):
  """`obj` with every non-finite float (NaN: not measured, e.g. `--steps=0`)
  as None and numpy scalars as Python numbers, so that `json.dump(...,
  allow_nan=False)` writes strict JSON (no `NaN` token other parsers
  reject)."""
  if isinstance(obj, dict):
    return {k: strict_json(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict_json(v) for v in obj]
  if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
    obj = obj.item()
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  return obj


def xla_memory_bytes(compiled) -> int:
  """Memory XLA assigns to a compiled program: arguments + outputs +
  temporaries (its temp buffer is sized to the peak of live temporaries),
  less donated arguments reused as outputs (`Compiled.memory_analysis()`,
  the same on CPU and GPU)."""
  m = compiled.memory_analysis()
  return int(
    m.argument_size_in_bytes
    + m.output_size_in_bytes
    + m.temp_size_in_bytes
    - m.alias_size_in_bytes
  )


def xla_flops(compiled) -> float | None:
  """Floating-point operations XLA counts in a compiled program
  (`Compiled.cost_analysis()`; None where the backend gives none)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except  # backend without it
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  flops = cost.get("flops") if isinstance(cost, dict) else None
  return float(flops) if flops is not None else None


def compile_call(fn, args: tuple, *, feed_back: bool = False):
  """Compiles `jax.jit(fn)` on `args` and returns (facts, call).

  Args:
    fn: the function to jit (e.g. a method's step).
    args: its arguments.
    feed_back: `fn` returns (state, metrics) with `args[0]` the state: the
      state is donated and each `call()` feeds the new one back (a training
      step); otherwise every call runs on the same `args`.

  Returns:
    ({"memory_bytes", "compile_sec", "flops"}, call): `call()` runs once
    and waits.
  """
  jitted = jax.jit(fn, donate_argnums=0 if feed_back else ())
  t0 = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  facts = {
    "memory_bytes": xla_memory_bytes(compiled),
    "compile_sec": time.perf_counter() - t0,
    "flops": xla_flops(compiled),
  }
  if not feed_back:
    return facts, lambda: jax.block_until_ready(compiled(*args))
  holder = {"state": args[0]}

  def call():
    holder["state"], metrics = compiled(holder["state"], *args[1:])
    jax.block_until_ready(metrics)

  return facts, call


def time_rounds(calls: dict, steps: int, rounds: int = 1) -> dict:
  """Seconds of every call, `rounds` rounds of `steps` calls a row, the rows
  interleaved call by call (one warm-up call each first): a drift of the
  machine's load touches every row alike, and a burst of noise shows as
  one round apart from the others.

  Returns {name: [[seconds] * steps] * rounds}; `steps=0`: no rounds
  (memory only).
  """
  times = {name: [] for name in calls}
  for call in calls.values() if steps else ():
    call()
  for _ in range(rounds if steps else 0):
    for t in times.values():
      t.append([])
    for _ in range(steps):
      for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        times[name][-1].append(time.perf_counter() - t0)
  return times


def round_medians(times: list) -> list:
  """The median seconds of each round of one row."""
  return [statistics.median(r) for r in times]


def median(times: list) -> float:
  """The median of one row's round medians; NaN when nothing was timed."""
  return statistics.median(round_medians(times)) if times else math.nan


def ratio_spread(times: list, base: list) -> dict:
  """Per round, the ratio of two rows' round medians; their min, median and
  max (NaN when nothing was timed): the figure and how far one round can
  move it."""
  if not times:
    return dict.fromkeys(("min", "median", "max"), math.nan)
  r = [a / b for a, b in zip(round_medians(times), round_medians(base))]
  return {"min": min(r), "median": statistics.median(r), "max": max(r)}


def spread_text(s: dict) -> str:
  """'1.23x (1.20-1.27)': the median ratio and its min-max over rounds."""
  return f"{s['median']:.2f}x ({s['min']:.2f}-{s['max']:.2f})"
