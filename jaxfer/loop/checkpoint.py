"""Orbax checkpoints of the state, the data iterator, the config and facts
about the run (class names) that prediction needs.

Two managers in the workdir: ``checkpoints/`` keeps the last ``keep`` saves
(every ``every`` steps and at the end), ``best/`` keeps the one save whose
evaluation metric was best. Writes are atomic (Orbax commits a finished
temporary directory), so a run killed at any moment resumes from the last
complete save.
"""

import pathlib

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores (state, data iterator state, config)."""

  def __init__(self, workdir: str, *, keep: int = 2, best_mode: str = "max"):
    workdir = pathlib.Path(workdir).absolute()
    opts = dict(create=True, enable_async_checkpointing=False)
    self.last = ocp.CheckpointManager(
      workdir / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts),
    )
    self.best = ocp.CheckpointManager(
      workdir / "best",
      options=ocp.CheckpointManagerOptions(
        max_to_keep=1, best_fn=lambda m: m["value"], best_mode=best_mode, **opts
      ),
    )

  def latest_step(self) -> int | None:
    return self.last.latest_step()

  def save(
    self,
    step: int,
    state,
    data_state: dict,
    config: dict,
    *,
    meta: dict | None = None,
    last: bool = True,
    best_value: float | None = None,
  ) -> None:
    """Saves to `checkpoints/` if `last`, to `best/` if `best_value` is
    given (Orbax keeps it only if it beats the best so far)."""
    args = ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(data_state),
      config=ocp.args.JsonSave(config),
      meta=ocp.args.JsonSave(meta or {}),
    )
    if last and step not in self.last.all_steps():
      self.last.save(step, args=args)
    if best_value is not None and step not in self.best.all_steps():
      self.best.save(step, args=args, metrics={"value": float(best_value)})

  def latest_config(self) -> dict | None:
    """The config saved with the latest checkpoint (None: no checkpoint),
    read without the state, so it can be checked before restoring."""
    step = self.last.latest_step()
    if step is None:
      return None
    return self.last.restore(
      step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
    ).config

  def restore(self, state_like, step: int | None = None, *, best=False):
    """Restores (state, data_state, config, meta) shaped and sharded like
    `state_like` from `step` (default: the latest, or the best)."""
    manager = self.best if best else self.last
    if step is None:
      step = manager.best_step() if best else manager.latest_step()
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)
    out = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore(),
      ),
    )
    return out.state, out.data, out.config, out.meta

  def close(self):
    self.last.close()
    self.best.close()


def has_best(workdir: str) -> bool:
  """Whether `workdir/best` holds a checkpoint."""
  best = pathlib.Path(workdir).absolute() / "best"
  return best.is_dir() and ocp.CheckpointManager(best).latest_step() is not None


def chosen(workdir: str, best: bool) -> bool:
  """`best`, unless the run's config chose no best checkpoint
  (`checkpoint.best_split` empty, and so no `best/`): then its latest."""
  if best and not has_best(workdir):
    saved, _ = read_config(workdir, best=False)
    return bool(saved["checkpoint"]["best_split"])
  return best


def read_config(workdir: str, *, best: bool = True) -> tuple[dict, dict]:
  """(config, meta) saved with the best (or latest) checkpoint."""
  sub = "best" if best else "checkpoints"
  manager = ocp.CheckpointManager(pathlib.Path(workdir).absolute() / sub)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {workdir}/{sub}")
  out = manager.restore(
    step,
    args=ocp.args.Composite(
      config=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()
    ),
  )
  return out.config, out.meta


def read_arrays(directory) -> dict:
  """A saved state as numpy arrays, whatever devices it was saved from.

  `directory` is a checkpoint item, e.g. `<workdir>/checkpoints/<step>/state`.
  """
  ckptr = ocp.StandardCheckpointer()
  meta = ckptr.metadata(directory).item_metadata
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(
    lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
    dict(meta),
  )
  return jax.device_get(ckptr.restore(directory, target))
