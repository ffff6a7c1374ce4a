"""ResNet-18/34/50 with an ImageNet stem or a small-input stem for 48x48."""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxfer.models import layers

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def _conv(features: int, kernel: int, strides: int, dtype):
  # kernel // 2 on every side, as torchvision: "SAME" pads a strided
  # convolution of an even input on the far side only, which shifts every
  # window by one pixel against imported PyTorch weights.
  pad = [(kernel // 2, kernel // 2)] * 2
  return nn.Conv(
    features,
    (kernel, kernel),
    strides,
    padding=pad,
    use_bias=False,
    dtype=dtype,
  )


def _last_scale(zero: bool):
  return nn.initializers.zeros if zero else nn.initializers.ones


class _Block(nn.Module):
  """The fields of a residual block: its width, stride, norm-layer
  constructor, dtype and whether its last norm's scale starts at zero."""

  filters: int
  strides: int
  norm: object
  dtype: jnp.dtype
  zero_init: bool = False

  def conv(self, filters: int, kernel: int, strides: int):
    return _conv(filters, kernel, strides, self.dtype)


class BasicBlock(_Block):
  """Two 3x3 convolutions with a residual connection."""

  @nn.compact
  def __call__(self, x):
    conv = self.conv
    y = nn.relu(self.norm()(conv(self.filters, 3, self.strides)(x)))
    y = self.norm(scale_init=_last_scale(self.zero_init))(
      conv(self.filters, 3, 1)(y)
    )
    if x.shape[-1] != self.filters or self.strides != 1:
      x = self.norm()(conv(self.filters, 1, self.strides)(x))
    return nn.relu(x + y)


class Bottleneck(_Block):
  """1x1, 3x3, 1x1 convolutions (4x expansion) with a residual connection."""

  @nn.compact
  def __call__(self, x):
    conv = self.conv
    y = nn.relu(self.norm()(conv(self.filters, 1, 1)(x)))
    y = nn.relu(self.norm()(conv(self.filters, 3, self.strides)(y)))
    y = self.norm(scale_init=_last_scale(self.zero_init))(
      conv(4 * self.filters, 1, 1)(y)
    )
    if x.shape[-1] != 4 * self.filters or self.strides != 1:
      x = self.norm()(conv(4 * self.filters, 1, self.strides)(x))
    return nn.relu(x + y)


class ResNet(layers.Network):
  """ResNet returning (logits, penultimate features).

  Attributes:
    num_classes: output classes.
    depth: 18, 34 or 50 (sets the block and the stages unless `stages`).
    stages: blocks per stage, overriding `depth` (tiny test models).
    width: channels of the first stage (64 in the paper).
    stem: "imagenet" (7x7/2 conv and 3x3/2 max-pool) or "small" (one 3x3/1
      conv, for 32-64 px inputs such as FER2013's 48x48).
    norm: "batch", "group", "instance" or "none".
    dtype: compute dtype (parameters stay float32).
    bn_axis_name: mapped axis BatchNorm reduces over (pmap / shard_map).
    zero_init_residual: start each block's last norm scale at zero (Goyal
      et al.); measured here to slow the first FER2013 epochs a lot.
  """

  depth: int = 18
  stages: Sequence[int] | None = None
  width: int = 64
  stem: str = "small"
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth not in STAGES:
      raise ValueError(
        f"ResNet depth must be one of {sorted(STAGES)}, got {self.depth}"
      )
    norm = layers.norm_of(self, train=train)
    block = Bottleneck if self.depth == 50 else BasicBlock
    x = x.astype(self.dtype)
    if self.stem == "imagenet":
      x = nn.Conv(
        self.width,
        (7, 7),
        2,
        padding=[(3, 3), (3, 3)],
        use_bias=False,
        dtype=self.dtype,
      )(x)
      x = nn.relu(norm()(x))
      x = nn.max_pool(
        x, window_shape=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1))
      )
    elif self.stem == "small":
      x = nn.Conv(
        self.width, (3, 3), 1, padding="SAME", use_bias=False, dtype=self.dtype
      )(x)
      x = nn.relu(norm()(x))
    else:
      raise ValueError(
        f"config.model.stem must be imagenet or small, got {self.stem!r}"
      )
    for i, n in enumerate(self.stages or STAGES[self.depth]):
      for j in range(n):
        x = block(
          self.width * 2**i,
          2 if i and not j else 1,
          norm,
          self.dtype,
          self.zero_init_residual,
        )(x)
    return layers.head(self, jnp.mean(x, axis=(1, 2)))
