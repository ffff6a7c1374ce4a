"""Supervised training: the first method, and the baseline of every other."""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxfer.core import losses
from jaxfer.core import optim
from jaxfer.methods import base
from jaxfer.models import net as net_lib


@flax.struct.dataclass
class State:
  step: jax.Array
  net: net_lib.Net


def loss_fn(params, batch_stats, batch, *, apply_fn, label_smoothing: float):
  """Mean cross-entropy of a labeled batch (soft labels if it has them)."""
  logits, _, new_stats = net_lib.forward(
    apply_fn, params, batch_stats, batch["image"], train=True
  )
  if "soft_label" in batch:
    targets = batch["soft_label"]
  else:
    targets = jax.nn.one_hot(batch["label"], logits.shape[-1])
  loss = jnp.mean(
    losses.soft_xent(logits, losses.smooth(targets, label_smoothing))
  )
  return loss, (logits, new_stats)


def train_step(
  state: State,
  batch,
  rng,
  *,
  apply_fn,
  tx,
  label_smoothing: float = 0.0,
  ema_decay: float = 0.999,
  axis_name: str | None = None,
):
  """One optimizer step on a labeled batch. Pure.

  Args:
    state: the State.
    batch: {"image", "label"[, "soft_label"]}.
    rng: the run's base key (unused: the step has no randomness).
    apply_fn: the model's `apply`.
    tx: the optax transformation.
    label_smoothing: alpha of the smoothed targets.
    ema_decay: decay of the parameter EMA (if the state keeps one).
    axis_name: under pmap/shard_map, the mapped data axis to average over.
  """
  del rng
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (logits, stats)), grads = grad_fn(
    state.net.params,
    state.net.batch_stats,
    batch,
    apply_fn=apply_fn,
    label_smoothing=label_smoothing,
  )
  acc = losses.accuracy(logits, batch["label"])
  if axis_name is not None:
    grads, loss, acc, stats = jax.lax.pmean(
      (grads, loss, acc, stats), axis_name
    )
  net = net_lib.apply_updates(
    state.net, grads, stats, tx, ema_decay=ema_decay, step=state.step
  )
  metrics = {
    "loss": loss,
    "accuracy": acc,
    "grad_norm": optax.tree_utils.tree_norm(grads),
  }
  return State(state.step + 1, net), metrics


def build(
  config: ml_collections.ConfigDict,
  model,
  total_steps: int,
  *,
  axis_name: str | None = None,
  pool_size: int = 0,
) -> base.Method:
  """The supervised Method for `config` (fields: optimizer, ema_decay,
  label_smoothing)."""
  del pool_size  # no per-face state
  tx, schedule = optim.build(config.optimizer, total_steps)
  ema = config.ema_decay > 0

  def init(rng, images):
    return State(
      jnp.int32(0), net_lib.init_net(rng, model, images, tx, ema=ema)
    )

  step = functools.partial(
    train_step,
    apply_fn=model.apply,
    tx=tx,
    label_smoothing=config.label_smoothing,
    ema_decay=config.ema_decay,
    axis_name=axis_name,
  )

  def step_with_lr(state, batch, rng):
    lr = schedule(state.step)
    state, metrics = step(state, batch, rng)
    return state, {**metrics, "lr": lr}

  def eval_variables(state):
    out = {"model": net_lib.variables(state.net.params, state.net.batch_stats)}
    if ema:
      out["ema"] = net_lib.variables(**state.net.ema)
    return out

  apply = lambda v, x: model.apply(v, x, train=False)
  return base.single(init, step_with_lr, eval_variables, apply)
