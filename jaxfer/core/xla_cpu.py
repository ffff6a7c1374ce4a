"""XLA CPU's memory-optimising scheduler, on for the runs that ask for remat.

On XLA CPU, `jax.checkpoint` saves no memory with the default scheduler:
the recomputation is scheduled early and its results live as long as the
saved activations would have (measured in the docs, Benchmarks: `python -m jaxfer.bench meta`).
`--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED` orders the
program for peak memory instead. The training entry points (`jaxfer.main`,
`jaxfer.omni`) turn it on before JAX starts its backend when

* the user has not set `XLA_FLAGS` (their choice always wins: set
  `XLA_FLAGS=` to an empty string to keep XLA's default), and
* the config asks for remat (`face2exp.exact.remat`, or `distill.remat` with the
  `unroll` objective): the flag costs the plain step time (docs, Benchmarks:
  `python -m jaxfer.bench scheduler`), so runs that do not rematerialise
  keep the default.

The flag is read by XLA's CPU compiler only: on a GPU or TPU it changes
nothing but the host's small programs, and the log line says so. XLA
aborts the process on a flag it does not know, and older jaxlib releases
(which `pyproject.toml` admits) do not know this one: a short child
process on the CPU backend asks first, and where the flag is unknown it
stays unset and the log says so.
"""

import os
import subprocess
import sys

MEMORY_SCHEDULER = (
  "--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"
)


def remat_fields(config) -> list[str]:
  """The config fields that ask for `jax.checkpoint` in the step."""
  method, out = config.method, []
  if method == "face2exp" and config.face2exp.exact.remat:
    out.append("face2exp.exact.remat")
  if (
    method == "distill"
    and config.distill.remat
    and config.distill.objective == "unroll"
  ):
    out.append("distill.remat")
  return out


def xla_knows(flags: str) -> bool:
  """Whether this jaxlib's XLA accepts `flags` in XLA_FLAGS (an unknown
  flag aborts the process that starts a backend: a child process tries)."""
  env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
  try:
    p = subprocess.run(
      [sys.executable, "-c", "import jax; jax.devices()"],
      env=env,
      capture_output=True,
      timeout=300,
      check=False,
    )
  except subprocess.TimeoutExpired:
    return False
  return p.returncode == 0


def configure(configs, environ=None, knows=xla_knows) -> str | None:
  """Sets `XLA_FLAGS` to the memory-optimising scheduler when none of the
  user's is set and one of `configs` asks for remat. Call it before the
  first JAX computation (XLA reads the flags when it starts a backend).

  Returns the line to log, or None when there is nothing to say.
  """
  environ = os.environ if environ is None else environ
  fields = sorted({f for c in configs for f in remat_fields(c)})
  if "XLA_FLAGS" in environ or not fields:
    return None
  if not knows(MEMORY_SCHEDULER):
    return (
      f"the config asks for remat ({', '.join(fields)}) but this "
      f"jaxlib's XLA does not know {MEMORY_SCHEDULER.split('=')[0]} "
      "(newer jax releases do): left unset, so on XLA CPU "
      "jax.checkpoint will save no memory"
    )
  environ["XLA_FLAGS"] = MEMORY_SCHEDULER
  return (
    f"XLA_FLAGS={MEMORY_SCHEDULER} (the config asks for remat: "
    f"{', '.join(fields)}; on XLA CPU jax.checkpoint saves memory only "
    "with this scheduler; it is read by the CPU compiler only, and "
    "your own XLA_FLAGS, even empty, replace it)"
  )
