"""Model zoo: every model maps (images, train) to (logits, features)."""

import jax.numpy as jnp
import ml_collections

from jaxfer.models.convnet import ConvNet
from jaxfer.models.resnet import ResNet
from jaxfer.models.vgg import VGG
from jaxfer.models.wideresnet import WideResNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build(
  cfg: ml_collections.ConfigDict,
  num_classes: int,
  *,
  bn_axis_name: str | None = None,
):
  """The flax module named by `cfg.name` ("resnet", "wideresnet", "convnet", "vgg").

  Args:
    cfg: `config.model`: name plus the fields of that model's dataclass,
      and `dtype` ("float32" or "bfloat16" compute; parameters stay f32).
    num_classes: output classes.
    bn_axis_name: BatchNorm's mapped axis (pmap / shard_map steps).
  """
  kw = dict(cfg)
  name = kw.pop("name")
  dtype = kw.pop("dtype", "float32")
  if dtype not in DTYPES:
    raise ValueError(
      f"config.model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}"
    )
  models = {
    "resnet": ResNet,
    "wideresnet": WideResNet,
    "convnet": ConvNet,
    "vgg": VGG,
  }
  if name not in models:
    raise ValueError(
      f"config.model.name must be one of {sorted(models)}, got {name!r}"
    )
  cls = models[name]
  fields = set(cls.__dataclass_fields__) - {"parent", "name"}
  unknown = set(kw) - fields
  if unknown:
    raise ValueError(
      f"config.model has fields {sorted(unknown)} that "
      f"{cls.__name__} does not take; it takes "
      f"{sorted(fields - {'num_classes'})}"
    )
  if "stages" in kw and kw["stages"] is not None:
    kw["stages"] = tuple(kw["stages"])
  return cls(
    num_classes=num_classes,
    dtype=DTYPES[dtype],
    bn_axis_name=bn_axis_name,
    **kw,
  )


def eval_apply(model):
  """(variables, images) -> (logits, features) of `model` in eval mode:
  the one forward of every evaluation, of the zoo and of mining."""
  return lambda variables, images: model.apply(variables, images, train=False)
