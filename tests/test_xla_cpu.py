"""The memory-optimising scheduler of the training entry points: set only
for configs that ask for remat and only when the user set no XLA_FLAGS;
set after every jaxfer import, it still reaches XLA (memory drops)."""

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import config
from jaxfer.core import xla_cpu

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _remat(name="face2exp_fer2013"):
  c = config(name, "smoke")
  if name == "face2exp_fer2013":
    c.face2exp.exact.remat = True
  return c


def test_set_only_for_remat_and_never_over_the_users_flags():
  env = {}
  assert xla_cpu.configure([config("default", "smoke")], env) is None
  assert env == {}
  line = xla_cpu.configure([config("default", "smoke"), _remat()], env)
  assert env == {"XLA_FLAGS": xla_cpu.MEMORY_SCHEDULER}
  assert "face2exp.exact.remat" in line
  for users in ("", "--xla_force_host_platform_device_count=4"):
    env = {"XLA_FLAGS": users}
    assert xla_cpu.configure([_remat()], env) is None
    assert env == {"XLA_FLAGS": users}


@pytest.mark.slow
def test_xla_is_asked_whether_it_knows_the_flag():
  # XLA aborts a process on an unknown flag (older jaxlib releases do not
  # know the scheduler's): the child process finds out instead.
  assert xla_cpu.xla_knows(xla_cpu.MEMORY_SCHEDULER)  # this jaxlib does
  assert not xla_cpu.xla_knows("--xla_cpu_no_such_flag_in_any_release=1")
  env = {}
  line = xla_cpu.configure([_remat()], env, knows=lambda flags: False)
  assert env == {}  # left unset, and said so
  assert "does not know --xla_cpu_scheduler_type" in line
  assert "face2exp.exact.remat" in line


def test_distill_remat_counts_only_for_the_unrolled_objective():
  c = config("distill_fer2013", "smoke")
  c.distill.remat, c.distill.objective = True, "unroll"
  assert xla_cpu.remat_fields(c) == ["distill.remat"]
  c.distill.objective = "krr"  # nothing is unrolled
  assert xla_cpu.remat_fields(c) == []
  c = _remat()
  c.method = "supervised"  # face2exp fields unused
  assert xla_cpu.remat_fields(c) == []


_PROBE = """
import sys
import jaxfer.main, jaxfer.omni            # every import of the entry points
from jaxfer.core import xla_cpu
from conftest import config
c = config("face2exp_fer2013", "smoke")
c.face2exp.exact.remat = sys.argv[1] == "remat"
print("LINE", xla_cpu.configure([c]))
import jax, jax.numpy as jnp
from ml_collections import ConfigDict
from jaxfer import models
m = models.build(ConfigDict(dict(name="convnet", depth=3, width=16,
                                 norm="none")), 7)
x = jnp.ones((32, 24, 24, 1))
p = m.init(jax.random.key(0), x, train=False)["params"]
loss = lambda p: jnp.sum(m.apply({"params": p}, x, train=False)[0] ** 2)
c = jax.jit(jax.grad(loss)).lower(p).compile()
print("TEMP", c.memory_analysis().temp_size_in_bytes)
"""


def _probe(arg):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  p = subprocess.run(
    [sys.executable, "-c", _PROBE, arg],
    cwd=ROOT / "tests",
    env={**env, "PYTHONPATH": str(ROOT)},
    capture_output=True,
    text=True,
    check=False,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  line = p.stdout.split("LINE ")[1].split("\n")[0]
  return line, int(p.stdout.split("TEMP ")[1].split()[0])


@pytest.mark.slow
def test_the_flag_reaches_xla_after_the_entry_points_imports():
  line, temp_on = _probe("remat")
  assert "face2exp.exact.remat" in line
  none, temp_off = _probe("plain")
  assert none == "None"
  # the memory-optimising scheduler packs this gradient's temporaries
  # tighter (4.15 -> 3.66 MiB when written); the default does not
  assert temp_on < temp_off
