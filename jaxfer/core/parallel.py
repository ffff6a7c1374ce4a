"""Data parallelism: the device mesh path (default) and the pmap path.

Both run a method's pure step on the global batch:

* ``mesh``: one ``jax.jit`` over a one-axis mesh ("data") spanning every
  device of every process; the batch is sharded along it, the state is
  replicated and donated. XLA inserts the collectives, so losses, gradients
  and BatchNorm statistics are those of the global batch.
* ``pmap``: ``jax.pmap(step, axis_name="batch")`` over this process's
  devices; the step reduces gradients, losses, metrics and BatchNorm
  statistics over the axis itself (each method's step takes `axis_name`).
  `jax.pmap` is in maintenance mode upstream; this path is for users who
  want it.

A runner turns host data into device data and back; the loop sees only
`put_state`, `host_state`, `put_batch` and `step`. `host_state` is the state
as mesh-replicated global arrays, which is what evaluation and Orbax take.
"""

import os

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

PMAP_AXIS = "batch"


def maybe_initialize(cfg) -> None:
  """Starts JAX's multi-controller runtime when the config or env asks.

  `cfg` is `config.distributed`: enabled, coordinator_address,
  num_processes, process_id (empty/-1: detected by JAX, e.g. on TPU pods or
  SLURM). JAXFER_DISTRIBUTED=1 in the environment also enables it.
  """
  if not (cfg.enabled or os.environ.get("JAXFER_DISTRIBUTED") == "1"):
    return
  if jax.distributed.is_initialized():
    return
  kw = {}
  if cfg.coordinator_address:
    kw = dict(
      coordinator_address=cfg.coordinator_address,
      num_processes=cfg.num_processes,
      process_id=cfg.process_id,
    )
  jax.distributed.initialize(**kw)


def make_mesh() -> jax.sharding.Mesh:
  """A one-axis mesh "data" over all devices of all processes."""
  return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


def check_divisible(name: str, size: int, parts: int, what: str) -> None:
  if size % parts:
    raise ValueError(
      f"{name}={size} does not divide over {parts} {what}; "
      f"use a multiple of {parts}"
    )


class MeshRunner:
  """jit with the batch sharded over the mesh and the state replicated."""

  def __init__(self, step, mesh):
    self.mesh = mesh
    self.repl = NamedSharding(mesh, P())
    self.sharded = NamedSharding(mesh, P("data"))
    self._step = jax.jit(
      step,
      in_shardings=(self.repl, self.sharded, self.repl),
      out_shardings=(self.repl, self.repl),
      donate_argnums=0,
    )

  def put_state(self, state):
    return state

  def host_state(self, state):
    return state

  def put_batch(self, local: dict) -> dict:
    return {
      k: jax.make_array_from_process_local_data(self.sharded, np.asarray(v))
      for k, v in local.items()
    }

  def step(self, state, batch, rng):
    return self._step(state, batch, rng)


class PmapRunner:
  """jax.pmap over this process's devices; the step reduces over the axis."""

  def __init__(self, step, mesh):
    self.mesh = mesh
    self.repl = NamedSharding(mesh, P())
    self.devices = jax.local_devices()
    self._step = jax.pmap(
      step, axis_name=PMAP_AXIS, in_axes=(0, 0, None), donate_argnums=0
    )
    self._identity = jax.pmap(lambda t: t)

  def put_state(self, state):
    n = len(self.devices)
    stacked = jax.tree.map(
      lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), state
    )
    return self._identity(stacked)  # one copy per device, pmap-placed

  def host_state(self, state):
    return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(
        self.repl, np.asarray(x[0])
      ),
      state,
    )

  def put_batch(self, local: dict) -> dict:
    n = len(self.devices)
    return {
      k: np.asarray(v).reshape((n, -1) + np.shape(v)[1:])
      for k, v in local.items()
    }

  def step(self, state, batch, rng):
    state, metrics = self._step(state, batch, rng)
    return state, jax.tree.map(lambda m: m[0], metrics)


def make_runner(mode: str, step, mesh):
  runners = {"mesh": MeshRunner, "pmap": PmapRunner}
  if mode not in runners:
    raise ValueError(f"config.parallel.mode must be mesh or pmap, got {mode!r}")
  return runners[mode](step, mesh)


def step_rng(rng, step, axis_name: str | None = None):
  """The key of one step (and one device): fold_in(rng, step[, device]).

  No key is stored in the state: a restarted run replays the same
  randomness. Under the mesh path randomness is drawn for the global batch,
  so it needs no device index; under pmap/shard_map pass the axis name to
  give each device its own stream.
  """
  rng = jax.random.fold_in(rng, step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
  return rng


def pmean(x, axis_name: str | None):
  """`lax.pmean` over the mapped data axis; the identity without one (the
  mesh path, where arrays are already global)."""
  return x if axis_name is None else jax.lax.pmean(x, axis_name)
