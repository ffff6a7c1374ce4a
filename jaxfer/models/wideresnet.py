"""WideResNet-28-k (pre-activation), the semi-supervised learning standard."""

import flax.linen as nn
import jax.numpy as jnp

from jaxfer.models import layers


class _Block(nn.Module):
  filters: int
  strides: int
  norm: object
  dtype: jnp.dtype

  @nn.compact
  def __call__(self, x):
    conv = lambda f, k, s: nn.Conv(
      f, (k, k), s, padding="SAME", use_bias=False, dtype=self.dtype
    )
    y = nn.leaky_relu(self.norm()(x), 0.1)
    shortcut = x
    if x.shape[-1] != self.filters or self.strides != 1:
      shortcut = conv(self.filters, 1, self.strides)(y)
    y = conv(self.filters, 3, self.strides)(y)
    y = conv(self.filters, 3, 1)(nn.leaky_relu(self.norm()(y), 0.1))
    return shortcut + y


class WideResNet(layers.Network):
  """WRN-depth-k returning (logits, penultimate features)."""

  depth: int = 28
  widen: int = 2

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6n+4, got {self.depth}")
    norm = layers.norm_of(self, train=train)
    n = (self.depth - 4) // 6
    x = nn.Conv(16, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(
      x.astype(self.dtype)
    )
    for i, f in enumerate((16, 32, 64)):
      for j in range(n):
        x = _Block(f * self.widen, 2 if i and not j else 1, norm, self.dtype)(x)
    x = nn.leaky_relu(norm()(x), 0.1)
    return layers.head(self, jnp.mean(x, axis=(1, 2)))
