"""Optimizers and learning-rate schedules from config (optax)."""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax


def cosine_schedule(
  *,
  lr: float,
  total_steps: int,
  warmup_steps: int = 0,
  wait_steps: int = 0,
  kind: str = "cosine",
):
  """Zero for `wait_steps`, linear warm-up, then half a cosine to zero.

  The MPL reference's `get_cosine_schedule_with_warmup` with a student wait.
  `kind="constant"` keeps `lr` after the warm-up.
  """
  if kind not in ("cosine", "constant"):
    raise ValueError(f"schedule must be cosine or constant, got {kind!r}")
  decay_steps = max(total_steps - warmup_steps - wait_steps, 1)

  def schedule(step):
    t = jnp.asarray(step, jnp.float32) - wait_steps
    warm = jnp.clip(t / max(warmup_steps, 1), 0.0, 1.0)
    progress = jnp.clip((t - warmup_steps) / decay_steps, 0.0, 1.0)
    cos = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    factor = jnp.where(t < warmup_steps, warm, cos if kind == "cosine" else 1.0)
    return jnp.where(t < 0, 0.0, lr * factor)

  return schedule


def decay_mask(params):
  """True for weights that get weight decay: kernels, not norms or biases."""
  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict({k: k[-1] == "kernel" for k in flat})


def build(cfg: ml_collections.ConfigDict, total_steps: int):
  """Returns (optax transformation, schedule) for `cfg`.

  Args:
    cfg: an optimizer section (`jaxfer.core.defaults.optimizer`).
    total_steps: the schedule's length.
  """
  schedule = cosine_schedule(
    lr=cfg.lr,
    total_steps=total_steps,
    warmup_steps=cfg.warmup_steps,
    wait_steps=cfg.wait_steps,
    kind=cfg.schedule,
  )
  wd = cfg.weight_decay
  if cfg.name == "sgd":
    momentum = cfg.momentum
    tx = optax.chain(
      optax.add_decayed_weights(wd, mask=decay_mask)
      if wd
      else optax.identity(),
      optax.sgd(schedule, momentum=momentum or None, nesterov=cfg.nesterov),
    )
  elif cfg.name == "adamw":
    tx = optax.adamw(
      schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=wd, mask=decay_mask
    )
  else:
    raise ValueError(f"optimizer name must be sgd or adamw, got {cfg.name!r}")
  if cfg.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)
  return tx, schedule


def ema_update(ema, new, decay):
  """e <- decay * e + (1 - decay) * new, leaf by leaf."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new)


def ema_decay_at(decay: float, step):
  """The EMA's decay at (0-based) step `step`: min(decay, (1 + step) /
  (10 + step)), so the early average is not held by the initial weights
  (at 0.999 they would keep 22% of it after 1,500 steps; TensorFlow's
  ExponentialMovingAverage with num_updates does the same)."""
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_variables(ema: dict, params, batch_stats, decay: float, step) -> dict:
  """The EMA of a network: its parameters and its BatchNorm statistics
  (running statistics of the live weights, averaged the same way), with
  the warm-up of `ema_decay_at`."""
  d = ema_decay_at(decay, step)
  return {
    "params": ema_update(ema["params"], params, d),
    "batch_stats": ema_update(ema["batch_stats"], batch_stats, d),
  }
