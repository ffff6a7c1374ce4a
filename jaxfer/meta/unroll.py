"""Unrolled inner training: the machinery both meta-gradient engines share.

Meta-Face2Exp's exact feedback (the teacher's gradient through K student
updates) and dataset distillation (the synthetic images' gradient through T
training steps of a fresh network) differentiate through the same thing: a
network trained for some steps by a real optax optimizer. Here it is once:

* `Inner`: what the inner loop carries (parameters, BatchNorm statistics,
  optimizer state); arrays only.
* `train_step`: one real optax update of an `Inner` on one inner batch,
  differentiable in everything it reads (the batch, soft targets, a learned
  learning-rate scale, the initial parameters).
* `unroll`: applies a step along the leading axis of its inputs, as a
  `lax.scan` or a Python loop, with optional `jax.checkpoint` per segment of
  steps (rematerialisation: memory that does not grow with every step's
  activations).

On XLA CPU, convolution backward passes inside a `lax.scan` body are slow
(jax-ml/jax#12868); `scan=False` unrolls in Python instead. `python -m
jaxfer.bench meta` and `... distill` measure both forms.
"""

from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class Inner:
  """The carry of an inner training loop."""

  params: Any
  batch_stats: Any
  opt_state: Any


def apply_tx(
  tx: optax.GradientTransformation,
  carry: Inner,
  grads,
  batch_stats,
  *,
  lr_scale=None,
) -> Inner:
  """One optax update of `carry` by `grads`; `lr_scale` multiplies it.

  For SGD (with or without momentum) scaling the update by `lr_scale` is
  the same as scaling the learning rate, which is how distillation learns
  per-step learning rates through a fixed optax chain.
  """
  updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
  if lr_scale is not None:
    updates = jax.tree.map(lambda u: lr_scale * u, updates)
  return Inner(
    optax.apply_updates(carry.params, updates), batch_stats, opt_state
  )


def train_step(
  carry: Inner,
  batch,
  *,
  loss_fn: Callable,
  tx,
  lr_scale=None,
  axis_name: str | None = None,
):
  """One inner optimizer step. Differentiable; pure.

  Args:
    carry: the inner network.
    batch: whatever `loss_fn` reads.
    loss_fn: (params, batch_stats, batch) -> (loss, (new batch_stats,
      extra)); `extra` is any pytree the caller wants back (e.g. logits).
    tx: the optax transformation (its state is `carry.opt_state`).
    lr_scale: optional scalar multiplying the update.
    axis_name: under pmap/shard_map, average the gradient over this axis
      (so the update is that of the global batch).

  Returns:
    (new carry, (loss before the update, extra)).
  """
  (loss, (stats, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
    carry.params, carry.batch_stats, batch
  )
  if axis_name is not None:
    grads, loss = jax.lax.pmean((grads, loss), axis_name)
  return apply_tx(tx, carry, grads, stats, lr_scale=lr_scale), (loss, extra)


def unroll(
  step: Callable,
  carry,
  xs,
  *,
  remat: bool = False,
  segment: int = 1,
  scan: bool = True,
):
  """Runs `carry, y = step(carry, x)` for each slice x of `xs`.

  Args:
    step: (carry, x) -> (carry, y).
    carry: the initial carry.
    xs: a pytree whose leaves share a leading axis of length T.
    remat: wrap every segment in `jax.checkpoint`: the backward pass keeps
      only the carries at segment boundaries and recomputes the rest.
    segment: steps per segment (T must be a multiple). 1 with `remat` is
      per-step checkpointing; about sqrt(T) trades memory for recompute.
    scan: iterate over segments with `lax.scan` (compiled once) or a Python
      loop (unrolled in the traced program).

  Returns:
    (final carry, ys stacked along a leading axis of length T).
  """
  length = jax.tree.leaves(xs)[0].shape[0]
  if length % segment:
    raise ValueError(
      f"{length} unrolled steps do not split into segments of {segment}"
    )

  def run_segment(c, xs_seg):
    ys = []
    for t in range(segment):
      c, y = step(c, jax.tree.map(lambda a, t=t: a[t], xs_seg))
      ys.append(y)
    return c, jax.tree.map(lambda *a: jnp.stack(a), *ys)

  if remat:
    run_segment = jax.checkpoint(run_segment)
  segs = jax.tree.map(
    lambda a: a.reshape((length // segment, segment) + a.shape[1:]), xs
  )
  if scan:
    carry, ys = jax.lax.scan(run_segment, carry, segs)
  else:
    outs = []
    for s in range(length // segment):
      carry, y = run_segment(carry, jax.tree.map(lambda a, s=s: a[s], segs))
      outs.append(y)
    ys = jax.tree.map(lambda *a: jnp.stack(a), *outs)
  ys = jax.tree.map(lambda a: a.reshape((length,) + a.shape[2:]), ys)
  return carry, ys
