"""Small fakes for tests and examples: tiny sources and a linear model."""

import numpy as np

from jaxfer.data import labels
from jaxfer.data.base import ArraySource


def tiny_source(
  n: int = 70,
  size: int = 8,
  channels: int = 1,
  num_classes: int = 7,
  seed: int = 0,
) -> ArraySource:
  """`n` random images whose first pixel encodes the row (for tracing)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return ArraySource(
    images,
    (np.arange(n) % num_classes).astype(np.int32),
    labels.FER2013[:num_classes],
    name="tiny",
  )


def noisy_view(item, rng):
  """A random transform that records its randomness in the output."""
  out = {
    "image": item["image"].astype(np.float32) / 255.0
    + rng.normal(size=item["image"].shape).astype(np.float32)
  }
  if "label" in item:
    out["label"] = item["label"]
  return out


def pair_view(item, rng):
  return {
    "weak": noisy_view(item, rng)["image"],
    "strong": noisy_view(item, rng)["image"],
  }


def params_after(
  mode: str,
  *,
  norm: str,
  method: str = "supervised",
  steps: int = 3,
  num_devices: int | None = None,
  batch_size: int = 16,
  **fields,
):
  """The state's arrays after `steps` steps of a tiny ResNet on fixed global
  batches, run by the given data-parallel path.

  Args:
    mode: "mesh" or "pmap" (jaxfer.core.parallel), or "shard_map" (the step
      under jax.shard_map with check_vma=False, as a user would call it).
    norm: "batch" or "group".
    method: "supervised", "face2exp" (then mu = 2, and `fields` set
      `config.face2exp`, e.g. feedback="exact", exact=dict(unroll_steps=2)), "dtm"
      (mu = 2, `fields` set `config.dtm`; a pool of 64 faces) or "distill"
      (`fields` set `config.distill`).
    steps: optimizer steps.
    num_devices: devices of the mesh path (default: all).
    batch_size: the global labeled batch.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top

  from jaxfer import methods
  from jaxfer import models
  from jaxfer.core import defaults  # pylint: disable=g-import-not-at-top
  from jaxfer.core import parallel  # pylint: disable=g-import-not-at-top

  axis = None if mode == "mesh" else parallel.PMAP_AXIS
  cfg = defaults.base()
  cfg.method, cfg.label_smoothing = method, 0.1
  cfg.mu = 2 if method in ("face2exp", "dtm") else 0
  cfg.data.batch_size = batch_size
  cfg.optimizer.update(lr=0.1, schedule="constant", warmup_steps=0)
  cfg.face2exp.student_optimizer.update(
    lr=0.1, schedule="constant", warmup_steps=0
  )
  if method == "distill":
    cfg.distill.update(
      init_images="noise", epochs=2, augment=True, pool_size=2, **fields
    )
  elif method == "dtm":
    cfg.dtm.update(fields)
  else:
    cfg.face2exp.update(fields)
  arch = (
    dict(name="resnet", depth=18, stages=(1, 1), width=4)
    if method == "supervised"
    else dict(name="convnet", depth=2, width=4)
  )
  model = models.build(
    ml_collections.ConfigDict(dict(**arch, norm=norm)), 7, bn_axis_name=axis
  )
  meth = methods.build(cfg, model, 100, axis_name=axis, pool_size=64)
  state = jax.jit(meth.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  rng = np.random.default_rng(0)
  image = lambda n: rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
  batches = []
  for t in range(steps):
    b = {
      "image": image(batch_size),
      "label": rng.integers(0, 7, batch_size).astype(np.int32),
    }
    if cfg.mu:
      n = batch_size * cfg.mu
      b["unlabeled_weak"] = image(n)
      b["unlabeled_strong"] = image(n)
      b["unlabeled_index"] = (np.arange(t * n, (t + 1) * n) % 64).astype(
        np.int32
      )
    batches.append(b)
  devices = jax.devices()[:num_devices]
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  if mode == "shard_map":
    step = jax.jit(
      jax.shard_map(
        meth.step,
        mesh=jax.sharding.Mesh(np.array(devices), (parallel.PMAP_AXIS,)),
        in_specs=(P(), P(parallel.PMAP_AXIS), P()),
        out_specs=(P(), P()),
        check_vma=False,
      )
    )
    for b in batches:
      state, _ = step(state, b, jax.random.key(1))
    return jax.device_get(state)
  runner = parallel.make_runner(mode, meth.step, mesh)
  state = runner.put_state(state)
  for b in batches:
    state, _ = runner.step(state, runner.put_batch(b), jax.random.key(1))
  return jax.device_get(runner.host_state(state))


# (norm, method, paths, fields of the method's config section) of the
# data-parallel checks. Every method is checked on the mesh path (the
# default: jit partitions the global batch) and on pmap (jaxfer's own
# code reduces over the mapped axis: means, BatchNorm, the Gumbel noise's
# slice, FlexMatch's global indices); shard_map, on which pmap is built,
# for supervised only. A method's further cases take pmap alone (CPU
# time); first_order shares score_function's code path but the draw.
# tests/test_parallel.py checks that every registered method has a case on
# both paths.
PARALLEL_CASES = (
  ("group", "supervised", ("mesh", "pmap", "shard_map"), {}),
  ("batch", "supervised", ("mesh", "pmap", "shard_map"), {}),
  ("batch", "face2exp", ("pmap",), dict(feedback="score_function")),
  ("batch", "face2exp", ("mesh", "pmap"), dict(feedback="exact_jvp")),
  (
    "batch",
    "face2exp",
    ("pmap",),
    dict(feedback="exact", exact=dict(unroll_steps=2)),
  ),
  ("batch", "distill", ("mesh", "pmap"), dict(objective="unroll")),
  ("group", "distill", ("pmap",), dict(objective="krr")),
  # FlexMatch's per-face buffer (global indices), negative learning on
  # the faces below it; a low tau: the tiny model's near-uniform
  # probabilities pass. The other policies reduce the same gathered batch.
  (
    "batch",
    "dtm",
    ("mesh", "pmap"),
    dict(threshold="flexmatch", tau=0.2, negative=dict(enabled=True, cut=0.2)),
  ),
)


def parallel_param_diffs(part: int = 0, parts: int = 1) -> dict:
  """Max abs difference of every state array after 3 steps between one
  device and all devices by the mesh path, pmap and shard_map
  ("<case>/moved": how far 1-device training moved the parameters), for
  the cases `part` of `parts` (every parts-th case from `part`: processes
  that run in parallel share the work)."""
  import jax  # pylint: disable=g-import-not-at-top

  out = {}
  for norm, method, paths, fields in PARALLEL_CASES[part::parts]:
    case = "/".join([method, norm, *fields.values()][:3]).replace(
      "supervised/", ""
    )
    ref = params_after(
      "mesh", norm=norm, method=method, num_devices=1, **fields
    )
    start = params_after(
      "mesh", norm=norm, method=method, num_devices=1, steps=0, **fields
    )
    for mode in paths:
      got = params_after(mode, norm=norm, method=method, **fields)
      out[f"{case}/{mode}"] = max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b)))
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(got))
      )
    out[f"{case}/moved"] = max(
      float(np.max(np.abs(np.asarray(a, np.float64) - b)))
      for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(start))
      if np.issubdtype(np.asarray(a).dtype, np.floating)
    )
  return out


def tiny_model(norm: str = "batch", num_classes: int = 3, dtype=None):
  """A one-block ConvNet (width 4) for meta-gradient tests; float64 when
  x64 is on."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxfer.models.convnet import ConvNet  # pylint: disable=g-import-not-at-top

  return ConvNet(
    num_classes=num_classes,
    depth=1,
    width=4,
    norm=norm,
    dtype=dtype or jnp.result_type(float),
  )


def tiny_meta_batch(
  *,
  labeled: int = 4,
  unlabeled: int = 6,
  size: int = 4,
  num_classes: int = 3,
  seed: int = 0,
) -> dict:
  """A Meta-Face2Exp batch of random images (float64 when x64 is on)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.result_type(float))
  return {
    "image": f(labeled, size, size, 1),
    "label": jnp.asarray(np.arange(labeled) % num_classes, jnp.int32),
    "unlabeled_weak": f(unlabeled, size, size, 1),
    "unlabeled_strong": f(unlabeled, size, size, 1),
  }


def init_variables(model, rng, size: int = 4):
  """(params, batch_stats) of `model` in the default float dtype."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  v = model.init(rng, jnp.zeros((1, size, size, 1)))
  cast = lambda t: jax.tree.map(
    lambda a: jnp.asarray(a, jnp.result_type(float)), t
  )
  return cast(v["params"]), cast(v.get("batch_stats", {}))
