"""A VGG-style network for small grey faces (FER2013's 48x48)."""

import flax.linen as nn
import jax.numpy as jnp

from jaxfer.models.layers import norm_layer
from jaxfer.models.layers import out_dtype


class VGG(nn.Module):
  """Stages of `convs` 3x3 conv-norm-ReLU, a 2x2 max pool between stages,
  global average pooling, then a linear head.

  At 48x48 the default widths (32, 64, 128, 256) work at 48, 24, 12 and 6
  pixels: about 1.2 M parameters and 0.12 GMAC a face. Returns (logits,
  pooled features).
  """

  num_classes: int
  stages: tuple = (32, 64, 128, 256)
  convs: int = 2
  norm: str = "batch"
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = norm_layer(
      self.norm, train=train, dtype=self.dtype, axis_name=self.bn_axis_name
    )
    x = x.astype(self.dtype)
    for i, width in enumerate(self.stages):
      if i:
        x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
      for _ in range(self.convs):
        x = nn.Conv(
          width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype
        )(x)
        x = nn.relu(norm()(x))
    features = jnp.mean(x, axis=(1, 2)).astype(out_dtype(self.dtype))
    logits = nn.Dense(self.num_classes, dtype=self.dtype)(features)
    return logits.astype(out_dtype(self.dtype)), features
