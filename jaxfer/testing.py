"""Small fakes for tests and examples: tiny sources and a linear model."""

import numpy as np

from jaxfer.data import labels
from jaxfer.data.sources import ArraySource


def tiny_source(n: int = 70, size: int = 8, channels: int = 1,
                num_classes: int = 7, seed: int = 0) -> ArraySource:
  """`n` random images whose first pixel encodes the row (for tracing)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return ArraySource(images, (np.arange(n) % num_classes).astype(np.int32),
                     labels.FER2013[:num_classes], name="tiny")


def noisy_view(item, rng):
  """A random transform that records its randomness in the output."""
  out = {"image": item["image"].astype(np.float32) / 255.0
                  + rng.normal(size=item["image"].shape).astype(np.float32)}
  if "label" in item:
    out["label"] = item["label"]
  return out


def pair_view(item, rng):
  return {"weak": noisy_view(item, rng)["image"],
          "strong": noisy_view(item, rng)["image"]}


def supervised_params_after(mode: str, *, norm: str, steps: int = 3,
                            num_devices: int | None = None,
                            batch_size: int = 16):
  """Parameters of a tiny ResNet after `steps` supervised steps on fixed
  global batches, run by the given data-parallel path.

  Args:
    mode: "mesh" or "pmap" (jaxfer.parallel), or "shard_map" (the step
      under jax.shard_map with check_vma=False, as a user would call it).
    norm: "batch" or "group".
    steps: optimizer steps.
    num_devices: devices of the mesh path (default: all).
    batch_size: the global batch.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from jaxfer import models, parallel  # pylint: disable=g-import-not-at-top
  from jaxfer.methods import supervised  # pylint: disable=g-import-not-at-top

  axis = None if mode == "mesh" else parallel.PMAP_AXIS
  cfg = ml_collections.ConfigDict(dict(
      method="supervised", label_smoothing=0.1, ema_decay=0.0,
      optimizer=dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True,
                     weight_decay=5e-4, schedule="constant")))
  model = models.build(ml_collections.ConfigDict(dict(
      name="resnet", depth=18, stages=(1, 1), width=4, norm=norm)), 7,
                       bn_axis_name=axis)
  method = supervised.build(cfg, model, 100, axis_name=axis)
  state = jax.jit(method.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  rng = np.random.default_rng(0)
  batches = [{"image": rng.normal(size=(batch_size, 8, 8, 1)).astype(
                  np.float32),
              "label": rng.integers(0, 7, batch_size).astype(np.int32)}
             for _ in range(steps)]
  devices = jax.devices()[:num_devices]
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  if mode == "shard_map":
    step = jax.jit(jax.shard_map(
        method.step, mesh=jax.sharding.Mesh(np.array(devices),
                                            (parallel.PMAP_AXIS,)),
        in_specs=(P(), P(parallel.PMAP_AXIS), P()), out_specs=(P(), P()),
        check_vma=False))
    for b in batches:
      state, _ = step(state, b, jax.random.key(1))
    return jax.device_get(state.net.params)
  runner = parallel.make_runner(mode, method.step, mesh)
  state = runner.put_state(state)
  for b in batches:
    state, _ = runner.step(state, runner.put_batch(b), jax.random.key(1))
  return jax.device_get(runner.host_state(state).net.params)


def parallel_param_diffs() -> dict:
  """Max abs parameter difference after 3 supervised steps between one
  device and all devices by the mesh path, pmap and shard_map, for GroupNorm
  and BatchNorm ("<norm>/moved": how far 1-device training moved them)."""
  import jax  # pylint: disable=g-import-not-at-top
  out = {}
  for norm in ("group", "batch"):
    ref = supervised_params_after("mesh", norm=norm, num_devices=1)
    for mode in ("mesh", "pmap", "shard_map"):
      got = supervised_params_after(mode, norm=norm)
      out[f"{norm}/{mode}"] = max(
          float(np.max(np.abs(a - b)))
          for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got)))
    out[f"{norm}/moved"] = max(float(np.max(np.abs(a)))
                               for a in jax.tree.leaves(ref))
  return out


def tiny_model(norm: str = "batch", num_classes: int = 3, dtype=None):
  """A one-block ConvNet (width 4) for meta-gradient tests; float64 when
  x64 is on."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxfer.models.convnet import ConvNet  # pylint: disable=g-import-not-at-top
  return ConvNet(num_classes=num_classes, depth=1, width=4, norm=norm,
                 dtype=dtype or jnp.result_type(float))


def tiny_meta_batch(*, labeled: int = 4, unlabeled: int = 6, size: int = 4,
                    num_classes: int = 3, seed: int = 0) -> dict:
  """A Meta-Face2Exp batch of random images (float64 when x64 is on)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.result_type(float))
  return {"image": f(labeled, size, size, 1),
          "label": jnp.asarray(np.arange(labeled) % num_classes, jnp.int32),
          "unlabeled_weak": f(unlabeled, size, size, 1),
          "unlabeled_strong": f(unlabeled, size, size, 1)}


def init_variables(model, rng, size: int = 4):
  """(params, batch_stats) of `model` in the default float dtype."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  v = model.init(rng, jnp.zeros((1, size, size, 1)))
  cast = lambda t: jax.tree.map(
      lambda a: jnp.asarray(a, jnp.result_type(float)), t)
  return cast(v["params"]), cast(v.get("batch_stats", {}))
