"""The ConvNet of dataset distillation (DC/DSA/MTT): conv-norm-relu-pool."""

import flax.linen as nn

from jaxfer.models import layers


class ConvNet(layers.Network):
  """`depth` blocks of 3x3 conv, norm, ReLU, 2x2 average pool, then a head.

  Returns (logits, penultimate features). The defaults are those of
  `config.model` (`jaxfer.core.defaults`: depth 3, width 32, BatchNorm);
  dataset distillation's ConvNet-128 is `width=128, norm="instance"` (no
  mutable state, which keeps unrolled inner loops simple).
  """

  depth: int = 3
  width: int = 32

  @nn.compact
  def __call__(self, x, train: bool = False):
    norm = layers.norm_of(self, train=train)
    x = x.astype(self.dtype)
    for _ in range(self.depth):
      x = nn.Conv(self.width, (3, 3), padding="SAME", dtype=self.dtype)(x)
      x = nn.relu(norm()(x))
      x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    return layers.head(self, x.reshape(x.shape[0], -1))
