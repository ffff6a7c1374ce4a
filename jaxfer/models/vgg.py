"""A VGG-style network for small grey faces (FER2013's 48x48)."""

import flax.linen as nn
import jax.numpy as jnp

from jaxfer.models import layers


class VGG(layers.Network):
  """Stages of `convs` 3x3 conv-norm-ReLU, a 2x2 max pool between stages,
  global average pooling, then a linear head.

  At 48x48 the default widths (32, 64, 128, 256) work at 48, 24, 12 and 6
  pixels: about 1.2 M parameters and 0.12 GMAC a face. Returns (logits,
  pooled features).
  """

  stages: tuple = (32, 64, 128, 256)
  convs: int = 2

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = layers.norm_of(self, train=train)
    x = x.astype(self.dtype)
    for i, width in enumerate(self.stages):
      if i:
        x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
      for _ in range(self.convs):
        x = nn.Conv(
          width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype
        )(x)
        x = nn.relu(norm()(x))
    return layers.head(self, jnp.mean(x, axis=(1, 2)))
