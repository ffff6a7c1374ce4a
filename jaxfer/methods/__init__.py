"""Methods: one module per `config.method`, each with a `build(config,
model, run)` (`run`: a `base.Run`, what the builder knows of the run) that
returns the `base.Method` (a bundle of pure functions) the training loop
runs. `REGISTRY` is the one place that
maps a config's method name to its builder."""

from jaxfer.methods import base
from jaxfer.methods import distill
from jaxfer.methods import dtm
from jaxfer.methods import face2exp
from jaxfer.methods import supervised
from jaxfer.methods.base import Method

REGISTRY = {
  "supervised": supervised.build,
  "face2exp": face2exp.build,
  "distill": distill.build,
  "dtm": dtm.build,
}


def build(
  config,
  model,
  total_steps: int,
  *,
  axis_name=None,
  pool_size: int = 0,
  labeled_images=None,
) -> Method:
  """The Method named by `config.method`.

  Args:
    config: the run's config.
    model: the flax module.
    total_steps: the run's steps (schedules).
    axis_name: the mapped data axis under pmap/shard_map.
    pool_size: the unlabeled pool's size (0: none or unknown); methods that
      keep per-face state (FlexMatch's buffer) need it.
    labeled_images: `base.Run.labeled_images`.
  """
  if config.method not in REGISTRY:
    raise ValueError(
      f"config.method must be one of {sorted(REGISTRY)}, got {config.method!r}"
    )
  run = base.Run(total_steps, axis_name, pool_size, labeled_images)
  return REGISTRY[config.method](config, model, run)
