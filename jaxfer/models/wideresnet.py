"""WideResNet-28-k (pre-activation), the semi-supervised learning standard."""

import flax.linen as nn
import jax.numpy as jnp

from jaxfer.models.layers import norm_layer
from jaxfer.models.layers import out_dtype


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


class WideResNet(nn.Module):
  """WRN-depth-k returning (logits, penultimate features)."""

  num_classes: int
  depth: int = 28
  widen: int = 2
  norm: str = "batch"
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6n+4, got {self.depth}")
    norm = norm_layer(
      self.norm, train=train, dtype=self.dtype, axis_name=self.bn_axis_name
    )
    n = (self.depth - 4) // 6
    x = nn.Conv(16, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(
      x.astype(self.dtype)
    )
    for i, f in enumerate((16, 32, 64)):
      for j in range(n):
        x = _Block(f * self.widen, 2 if i and not j else 1, norm, self.dtype)(x)
    x = nn.leaky_relu(norm()(x), 0.1)
    features = jnp.mean(x, axis=(1, 2)).astype(out_dtype(self.dtype))
    logits = nn.Dense(self.num_classes, dtype=self.dtype)(features)
    return logits.astype(out_dtype(self.dtype)), features
