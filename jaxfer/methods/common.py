"""Pieces every method shares: the state of one network and its forward."""

from collections.abc import Callable
import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxfer import optim


@flax.struct.dataclass
class Net:
  """One network's parameters, BatchNorm statistics, optimizer state and EMA.

  Arrays only (jit-, donate- and Orbax-friendly). `batch_stats` is an empty
  dict for models without BatchNorm; `ema` is None without EMA.
  """
  params: Any
  batch_stats: Any
  opt_state: Any
  ema: Any = None


@dataclasses.dataclass(frozen=True)
class Method:
  """What the training loop needs of a method, as pure functions.

  Attributes:
    init: (rng, example images) -> state (a pytree of arrays with `.step`).
    step: (state, batch, rng) -> (state, metrics of scalars).
    eval_variables: state -> {model name: flax variables} to evaluate; the
      first name is the one checkpoints are selected by.
    apply: (variables, images) -> (logits, features) in eval mode.
    export: optional (state, workdir, class_names) -> None, called by the
      loop on process 0 after each evaluation, for what a method produces
      besides checkpoints (e.g. a distilled set).

  Evaluated models named ``<group>/<i>`` (several networks of one protocol)
  are also summarised by the loop as ``<group>/mean`` and ``<group>/std``.
  """
  init: Callable
  step: Callable
  eval_variables: Callable
  apply: Callable
  export: Callable | None = None


def variables(params, batch_stats) -> dict:
  """Flax variables from parameters and (possibly empty) BatchNorm stats."""
  return {"params": params, **({"batch_stats": batch_stats}
                               if batch_stats else {})}


def forward(apply_fn, params, batch_stats, images, *, train: bool):
  """(logits, features, new batch_stats) of a model on images."""
  v = variables(params, batch_stats)
  if train and batch_stats:
    (logits, features), new = apply_fn(v, images, train=True,
                                       mutable=["batch_stats"])
    return logits, features, new["batch_stats"]
  logits, features = apply_fn(v, images, train=train)
  return logits, features, batch_stats


def init_net(rng, model, images, tx, *, ema: bool) -> Net:
  """Initial Net of `model` for inputs shaped like `images`."""
  v = model.init(rng, images, train=False)
  params, batch_stats = v["params"], v.get("batch_stats", {})
  ema_v = {"params": params, "batch_stats": batch_stats} if ema else None
  return Net(params, batch_stats, tx.init(params), ema_v)


def apply_updates(net: Net, grads, batch_stats, tx, *, ema_decay: float) -> Net:
  """One optimizer step (and EMA update; BatchNorm statistics copied)."""
  updates, opt_state = tx.update(grads, net.opt_state, net.params)
  params = optax.apply_updates(net.params, updates)
  ema = net.ema
  if ema is not None:
    ema = {"params": optim.ema_update(ema["params"], params, ema_decay),
           "batch_stats": batch_stats}
  return Net(params, batch_stats, opt_state, ema)


def accuracy(logits, labels) -> jax.Array:
  return jnp.mean(jnp.argmax(logits, -1) == labels)
