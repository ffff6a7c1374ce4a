"""Supervised training: the first method, and the baseline of every other."""

import functools

import flax
import jax
import jax.numpy as jnp
import optax

from jaxfer.core import losses
from jaxfer.core import optim
from jaxfer.core import parallel
from jaxfer.methods import base
from jaxfer.models import net as net_lib


@flax.struct.dataclass
class State:
  step: jax.Array
  net: net_lib.Net


def targets_of(batch, num_classes: int) -> jax.Array:
  """The batch's soft labels if it has them, else one-hot labels."""
  if "soft_label" in batch:
    return batch["soft_label"]
  return jax.nn.one_hot(batch["label"], num_classes)


def mix(rng, images, targets, *, mixup_alpha: float, cutmix_alpha: float):
  """Mixup (Zhang et al., 2018) or CutMix (Yun et al., 2019) within the
  batch: each image with the image of a random permutation, targets mixed
  in the same proportion. lam ~ Beta(alpha, alpha); with both alphas > 0,
  one of the two at random each step. CutMix pastes a box of area
  (1 - lam) and sets lam to the exact share of pixels kept. Returns
  (images, targets, lam)."""
  if mixup_alpha <= 0 and cutmix_alpha <= 0:
    return images, targets, jnp.float32(1.0)
  k_perm, k_lam, k_box, k_which = jax.random.split(rng, 4)
  perm = jax.random.permutation(k_perm, images.shape[0])
  n, h, w = images.shape[:3]

  def mixup(_):
    lam = jax.random.beta(k_lam, mixup_alpha, mixup_alpha)
    return lam * images + (1 - lam) * images[perm], lam

  def cutmix(_):
    lam = jax.random.beta(k_lam, cutmix_alpha, cutmix_alpha)
    cut = jnp.sqrt(1 - lam)
    ch, cw = jnp.round(cut * h), jnp.round(cut * w)
    cy, cx = jax.random.uniform(k_box, (2,)) * jnp.array([h, w])
    y0, y1 = jnp.clip(cy - ch / 2, 0, h), jnp.clip(cy + ch / 2, 0, h)
    x0, x1 = jnp.clip(cx - cw / 2, 0, w), jnp.clip(cx + cw / 2, 0, w)
    ys = jnp.arange(h)[:, None]
    xs = jnp.arange(w)[None, :]
    inside = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    out = jnp.where(inside[None, :, :, None], images[perm], images)
    return out, 1 - inside.mean()

  if cutmix_alpha <= 0:
    images, lam = mixup(None)
  elif mixup_alpha <= 0:
    images, lam = cutmix(None)
  else:
    images, lam = jax.lax.cond(
      jax.random.bernoulli(k_which), cutmix, mixup, None
    )
  return images, lam * targets + (1 - lam) * targets[perm], lam


def loss_fn(params, batch_stats, batch, *, apply_fn, label_smoothing: float):
  """Mean cross-entropy of a labeled batch against its targets (the
  batch's "target" if given, e.g. mixed; else its soft or hard labels)."""
  logits, _, new_stats = net_lib.forward(
    apply_fn, params, batch_stats, batch["image"], train=True
  )
  targets = batch.get("target")
  if targets is None:
    targets = targets_of(batch, logits.shape[-1])
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
  label_smoothing: float,
  ema_decay: float,
  mixup_alpha: float,
  cutmix_alpha: float,
  num_classes: int,
  axis_name: str | None = None,
):
  """One optimizer step on a labeled batch. Pure. Its settings have no
  defaults here: `build` passes the config's (`jaxfer.core.defaults`).

  Args:
    state: the State.
    batch: {"image", "label"[, "soft_label"]}.
    rng: the run's base key (the step's own: `parallel.step_rng`; drawn
      from only by mixup / CutMix).
    apply_fn: the model's `apply`.
    tx: the optax transformation.
    label_smoothing: alpha of the smoothed targets.
    ema_decay: decay of the parameter EMA (if the state keeps one).
    mixup_alpha, cutmix_alpha: `mix` (0, 0: off).
    num_classes: the logits' width (for the mixed one-hot targets).
    axis_name: under pmap/shard_map, the mapped data axis to average over.
  """
  if mixup_alpha > 0 or cutmix_alpha > 0:
    key = parallel.step_rng(rng, state.step, axis_name)
    images, target, _ = mix(
      key,
      batch["image"],
      targets_of(batch, num_classes),
      mixup_alpha=mixup_alpha,
      cutmix_alpha=cutmix_alpha,
    )
    batch = {**batch, "image": images, "target": target}
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


def build(config, model, run: base.Run) -> base.Method:
  """The supervised Method for `config` (fields: optimizer, ema_decay, mixup,
  label_smoothing)."""
  tx, schedule = optim.build(config.optimizer, run.total_steps)
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
    mixup_alpha=config.mixup.alpha,
    cutmix_alpha=config.mixup.cutmix_alpha,
    num_classes=config.data.num_classes,
    axis_name=run.axis_name,
  )

  return base.single(
    init,
    base.with_lrs(step, lr=schedule),
    lambda state: base.evaluated(state.net, "model", "ema"),
  )
