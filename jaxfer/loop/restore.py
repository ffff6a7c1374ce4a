"""A trained model back from its workdir, for inference (predict, select)."""

import jax
import jax.numpy as jnp

from jaxfer import methods
from jaxfer import models
from jaxfer.core import defaults
from jaxfer.data import build as data_build
from jaxfer.loop import checkpoint as ckpt_lib


def load(workdir: str, *, best: bool = True):
  """(config, meta, method, state) restored from a jaxfer.main workdir.

  Uses the best checkpoint (or the latest) and the config saved with it;
  a run whose config chose no best checkpoint (`checkpoint.best_split`
  empty, e.g. `finetune`) gives its latest.
  """
  best = ckpt_lib.chosen(workdir, best)
  config, meta = ckpt_lib.read_config(workdir, best=best)
  config = defaults.from_json(config)
  model = models.build(config.model, config.data.num_classes)
  size, ch = config.data.image_size, config.data.channels
  # The state's structure only (the checkpoint gives its arrays): no image
  # of the training data is read to load a model.
  method = methods.build(
    config,
    model,
    config.total_steps,
    pool_size=meta.get("pool_size", 0),
    labeled_images=data_build.blank_per_class_images(config.data),
  )
  state = jax.eval_shape(
    method.init, jax.random.key(0), jnp.zeros((1, size, size, ch))
  )
  ckpt = ckpt_lib.Checkpointer(workdir)
  state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)
  state = ckpt.restore(state, best=best)[0]
  ckpt.close()
  return config, meta, method, state


def eval_model(method, state, name: str = ""):
  """(name, variables) of one evaluated model of a state (default: the
  first, e.g. "model", "ema", "student"); a ValueError names the others."""
  evals = method.eval_variables(state)
  name = name or next(iter(evals))
  if name not in evals:
    raise ValueError(f"model {name!r} is not one of {sorted(evals)}")
  return name, evals[name]
