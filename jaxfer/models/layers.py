"""What every network shares: its normalisation layer, its output dtype and
its linear head."""

import functools

import flax.linen as nn
import jax.numpy as jnp


def norm_layer(
  kind: str,
  *,
  train: bool,
  dtype=jnp.float32,
  axis_name: str | None = None,
  groups: int = 32,
):
  """Returns a constructor of the normalisation layer named by `kind`.

  Args:
    kind: "batch", "group" (at most `groups` groups), "instance" or "none".
    train: BatchNorm uses batch statistics (and updates its running ones).
    dtype: compute dtype.
    axis_name: BatchNorm reduces its statistics over this mapped axis too
      (for jax.pmap / shard_map).
    groups: the GroupNorm group count (reduced to divide the channels).
  """
  if kind == "batch":
    return functools.partial(
      nn.BatchNorm,
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      dtype=dtype,
      axis_name=axis_name,
    )
  if kind == "group":
    return lambda **kw: _GroupNorm(groups=groups, dtype=dtype, **kw)
  if kind == "instance":
    return lambda **kw: nn.GroupNorm(
      num_groups=None, group_size=1, dtype=dtype, **kw
    )
  if kind == "none":
    return lambda **kw: lambda x: x
  raise ValueError(
    f"config.model.norm must be batch, group, instance or none, got {kind!r}"
  )


def out_dtype(dtype):
  """Logits and features: float32 for bfloat16 compute, else `dtype` (so
  float64 tests stay float64)."""
  return jnp.promote_types(dtype, jnp.float32)


class Network(nn.Module):
  """The fields every network shares (each network adds its own, with the
  defaults `jaxfer.models.build` fills from `config.model`).

  Attributes:
    num_classes: the head's outputs.
    norm: "batch", "group", "instance" or "none" (`norm_layer`).
    dtype: compute dtype (parameters stay float32).
    bn_axis_name: the mapped axis BatchNorm reduces over (pmap / shard_map).
  """

  num_classes: int
  norm: str = "batch"
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None


def norm_of(net: nn.Module, *, train: bool):
  """`norm_layer` of a network `net` (its fields norm, dtype and
  bn_axis_name)."""
  return norm_layer(
    net.norm, train=train, dtype=net.dtype, axis_name=net.bn_axis_name
  )


def head(net: nn.Module, features):
  """(logits, features) of a network `net` (its fields num_classes and
  dtype): its linear head on `features`, both in `out_dtype`. Called in
  `net`'s compact method, so the head is `net`'s `Dense_0`."""
  features = features.astype(out_dtype(net.dtype))
  logits = nn.Dense(net.num_classes, dtype=net.dtype)(features)
  return logits.astype(out_dtype(net.dtype)), features


class _GroupNorm(nn.Module):
  """GroupNorm whose group count divides the channel count."""

  groups: int = 32
  dtype: jnp.dtype = jnp.float32
  scale_init: object = nn.initializers.ones

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    g = min(self.groups, c)
    while c % g:
      g -= 1
    return nn.GroupNorm(
      num_groups=g, dtype=self.dtype, scale_init=self.scale_init
    )(x)
