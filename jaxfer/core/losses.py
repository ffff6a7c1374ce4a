"""Losses on logits, each a small pure function."""

import jax
import jax.numpy as jnp


def smooth(targets: jax.Array, alpha: float) -> jax.Array:
  """Label smoothing of a distribution: (1 - alpha) t + alpha / C."""
  return (1.0 - alpha) * targets + alpha / targets.shape[-1]


def soft_xent(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-example cross-entropy against target distributions."""
  return -jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1)


def xent(logits: jax.Array, labels: jax.Array, *, alpha: float = 0.0):
  """Per-example cross-entropy against integer labels, smoothed by alpha."""
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  return soft_xent(logits, smooth(targets, alpha))


def masked_mean(x: jax.Array, mask: jax.Array | None) -> jax.Array:
  if mask is None:
    return jnp.mean(x)
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of argmax predictions equal to the labels (a step metric)."""
  return jnp.mean(jnp.argmax(logits, -1) == labels)
