"""The ConvNet of dataset distillation (DC/DSA/MTT): conv-norm-relu-pool."""

import flax.linen as nn
import jax.numpy as jnp

from jaxfer.models.layers import norm_layer
from jaxfer.models.layers import out_dtype


class ConvNet(nn.Module):
  """`depth` blocks of 3x3 conv, norm, ReLU, 2x2 average pool, then a head.

  Returns (logits, penultimate features). With the default instance norm
  there is no mutable state, which keeps unrolled inner loops simple.
  """

  num_classes: int
  depth: int = 3
  width: int = 128
  norm: str = "instance"
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = norm_layer(
      self.norm, train=train, dtype=self.dtype, axis_name=self.bn_axis_name
    )
    x = x.astype(self.dtype)
    for _ in range(self.depth):
      x = nn.Conv(self.width, (3, 3), padding="SAME", dtype=self.dtype)(x)
      x = nn.relu(norm()(x))
      x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    features = x.reshape(x.shape[0], -1).astype(out_dtype(self.dtype))
    logits = nn.Dense(self.num_classes, dtype=self.dtype)(features)
    return logits.astype(out_dtype(self.dtype)), features
