"""The `distill` Method for the training loop: the synthetic set's start,
the evaluation protocol and the export (the math is in
`jaxfer/meta/distillation.py`).

Evaluation (what `eval_variables` returns): `distill.eval.nets` freshly
initialised networks trained only on the synthetic images, either by the
``learned`` inner procedure (the T steps with the learned learning rates)
or by ``train`` (the DC/DSA/MTT protocol: `eval.steps` SGD steps with
momentum 0.9, cosine `eval.lr`, and DSA augmentation when `distill.augment`).
They are named ``distilled/<i>``; the loop logs their mean and std.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxfer.core import optim
from jaxfer.core import statics
from jaxfer.data.sources import distilled as distilled_data
from jaxfer.meta import augment
from jaxfer.meta import distillation
from jaxfer.meta import unroll
from jaxfer.meta.distillation import Hyper
from jaxfer.methods import base
from jaxfer.models import net as net_lib


def softplus_inverse(y: float) -> float:
  return float(np.log(np.expm1(y)))


def hyper(config) -> Hyper:
  d = config.distill
  hp = statics.from_section(
    Hyper,
    d,
    where="config.distill",
    num_classes=config.data.num_classes,
    seed=config.seed,
  )
  for name, value, allowed in (
    ("objective", hp.objective, ("unroll", "krr")),
    ("init", hp.init, ("resample", "fixed", "pool")),
  ):
    if value not in allowed:
      raise ValueError(
        f"config.distill.{name} must be one of {allowed}, got {value!r}"
      )
  if d.images_per_class % d.steps_per_epoch:
    raise ValueError(
      f"config.distill.images_per_class={d.images_per_class} "
      f"does not split into steps_per_epoch="
      f"{d.steps_per_epoch} groups"
    )
  return hp


def _train_fresh(rng, images, target, *, model, cfg, aug: bool):
  """The `train` protocol: one network trained on the synthetic set."""
  tx, _ = optim.build(cfg, cfg.steps)
  net = distillation.fresh(rng, model, images[:1], tx)
  batch = min(cfg.batch_size, images.shape[0])

  @jax.jit
  def step(net, images, target, k):
    k_pick, k_aug = jax.random.split(k)
    pick = jax.random.choice(k_pick, images.shape[0], (batch,), replace=False)
    x = images[pick]
    if aug:
      x = augment.apply(augment.sample(k_aug), x)
    new, _ = unroll.train_step(
      net,
      {"image": x, "target": target[pick]},
      loss_fn=lambda p, s, b: distillation.soft_loss(
        p, s, b, apply_fn=model.apply
      ),
      tx=tx,
    )
    return new

  images, target = jnp.asarray(images), jnp.asarray(target)
  for t in range(cfg.steps):
    net = step(net, images, target, jax.random.fold_in(rng, t))
  return net


def build(config, model, run: base.Run) -> base.Method:
  """The distill Method for `config` (fields: `distill`, `data`)."""
  hp = hyper(config)
  d, cfg = config.distill, config.data
  c, n = cfg.num_classes, d.images_per_class
  inner_tx = optax.sgd(1.0, momentum=d.inner_momentum or None)
  adam = lambda lr: optax.adam(lr, b1=0.5, b2=0.999)
  keys = ("images", "raw_lrs", "label_logits")
  outer_tx = optax.multi_transform(
    {
      "images": adam(d.lr_images),
      "raw_lrs": adam(d.lr_lrs),
      "label_logits": adam(d.lr_labels),
    },
    {k: k for k in keys},
  )
  use_pool = hp.objective == "krr" or hp.init == "pool"
  if d.init_images not in ("real", "noise"):
    raise ValueError(
      f"config.distill.init_images must be real or noise, got {d.init_images!r}"
    )
  real = d.init_images == "real"
  if real and run.labeled_images is None:
    raise ValueError(
      "config.distill.init_images='real' starts the synthetic set from "
      "labeled images: pass methods.build(..., labeled_images=) (the "
      "loop passes jaxfer.data.build.per_class_images), or set "
      "config.distill.init_images='noise'"
    )

  def init(rng, example):
    k_img, k_pool = jax.random.split(rng)
    shape = (c * n,) + tuple(example.shape[1:])
    images = (
      jnp.asarray(run.labeled_images(n)).reshape(shape)
      if real
      else jax.random.normal(k_img, shape)
    )
    labels = jnp.repeat(jnp.arange(c, dtype=jnp.int32), n)
    learned = {
      "images": images,
      "raw_lrs": jnp.full((hp.inner_steps,), softplus_inverse(d.lr_init)),
      "label_logits": 5.0 * jax.nn.one_hot(labels, c),
    }
    pool = (
      distillation.init_pool(
        k_pool, d.pool_size, model, images[:1], inner_tx, d.pool_max_age
      )
      if use_pool
      else None
    )
    return distillation.State(
      jnp.int32(0), learned, labels, outer_tx.init(learned), pool
    )

  step = functools.partial(
    distillation.distill_step,
    model=model,
    inner_tx=inner_tx,
    outer_tx=outer_tx,
    pool_lr=d.pool_lr,
    hp=hp,
    axis_name=run.axis_name,
  )

  @jax.jit
  def learned_net(learned, labels, rng):
    net, _ = distillation.inner_train(
      distillation.fresh(rng, model, learned["images"][:1], inner_tx),
      learned["images"],
      distillation.targets(learned, labels, hp),
      jax.nn.softplus(learned["raw_lrs"]),
      None,
      apply_fn=model.apply,
      tx=inner_tx,
      hp=hp,
    )
    return net

  def eval_variables(state):
    learned, labels = _local(state.learned), _local(state.labels)
    target = distillation.targets(learned, labels, hp)
    out = {}
    for i in range(d.eval.nets):
      rng = jax.random.key(10_000 + i)
      if d.eval.mode == "learned":
        net = learned_net(learned, labels, rng)
      else:
        net = _train_fresh(
          rng,
          learned["images"],
          target,
          model=model,
          cfg=d.eval,
          aug=hp.augment,
        )
      out[f"distilled/{i}"] = net_lib.variables(net.params, net.batch_stats)
    return out

  def export(state, workdir, class_names):
    learned, labels = _local(state.learned), _local(state.labels)
    distilled_data.save(
      pathlib.Path(workdir) / "distilled",
      images=learned["images"],
      labels=labels,
      soft_labels=distillation.targets(learned, labels, hp),
      class_names=class_names,
      mean=tuple(cfg.mean),
      std=tuple(cfg.std),
      lrs=(
        jax.nn.softplus(learned["raw_lrs"])
        if hp.objective == "unroll"
        else None
      ),
      learned_labels=hp.learn_labels,
      objective=hp.objective,
      step=int(_local(state.step)),
    )

  return base.single(init, step, eval_variables, export)


def _local(tree):
  """A replicated (possibly multi-process) pytree as local numpy arrays."""
  return jax.tree.map(
    lambda a: np.asarray(
      a.addressable_data(0) if isinstance(a, jax.Array) else a
    ),
    tree,
  )
