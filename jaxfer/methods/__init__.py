"""Methods: each builds a `common.Method` of pure functions from a config."""

from jaxfer.methods import distillation
from jaxfer.methods import face2exp
from jaxfer.methods import supervised
from jaxfer.methods.common import Method

REGISTRY = {"supervised": supervised.build, "face2exp": face2exp.build,
            "distill": distillation.build}


def build(config, model, total_steps: int, *, axis_name=None) -> Method:
  """The Method named by `config.method`."""
  if config.method not in REGISTRY:
    raise ValueError(f"config.method must be one of {sorted(REGISTRY)}, got "
                     f"{config.method!r}")
  return REGISTRY[config.method](config, model, total_steps,
                                 axis_name=axis_name)
