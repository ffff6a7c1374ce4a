"""Differentiable augmentation on device (DSA style) for distillation.

`sample(rng, ...)` draws one augmentation (flip, integer translation,
brightness shift, contrast scale); `apply(params, x)` applies it to a batch
of normalized images ``f32[N, H, W, C]``, differentiably in `x`. Drawing
once and applying the same draw to the synthetic and the real batch is the
"siamese" augmentation of DSA (Zhao & Bilen, 2021).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Params(NamedTuple):
  flip: jax.Array  # bool
  shift: jax.Array  # int32 [2]: rows, columns
  brightness: jax.Array  # f32, added
  contrast: jax.Array  # f32, scales deviations from the image mean


def sample(
  rng, *, max_shift: int = 4, brightness: float = 0.2, contrast: float = 0.2
) -> Params:
  """One augmentation, uniform in the given ranges."""
  k = jax.random.split(rng, 4)
  return Params(
    flip=jax.random.bernoulli(k[0]),
    shift=jax.random.randint(k[1], (2,), -max_shift, max_shift + 1),
    brightness=jax.random.uniform(
      k[2], (), minval=-brightness, maxval=brightness
    ),
    contrast=jax.random.uniform(
      k[3], (), minval=1 - contrast, maxval=1 + contrast
    ),
  )


def translate(x: jax.Array, shift: jax.Array) -> jax.Array:
  """Moves the images by (rows, columns) pixels, zero (mean) filled."""
  n, h, w, c = x.shape
  pad = h
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  return jax.lax.dynamic_slice(
    padded, (0, pad - shift[0], pad - shift[1], 0), (n, h, w, c)
  )


def apply(p: Params, x: jax.Array) -> jax.Array:
  """The augmentation `p` of the normalized images `x` (differentiable)."""
  x = jnp.where(p.flip, x[:, :, ::-1, :], x)
  x = translate(x, p.shift)
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * p.contrast + mean + p.brightness
