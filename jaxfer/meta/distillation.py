"""Dataset distillation: a few synthetic images per class that train a FER
model. The other meta-gradient engine of jaxfer (see REFERENCE.md sec. 2).

Learned: the images (n per class), per-step inner learning rates
eta_t = softplus(raw_t) (Wang et al. 2018) and optionally soft labels.
Two outer objectives (`hp.objective`):

* ``unroll``: a network trained for T = steps_per_epoch * epochs inner steps
  on the synthetic images, from a fresh random initialisation (``resample``,
  each outer step), a ``fixed`` one, or a partly trained ``pool`` member;
  the loss of the result on a real batch is differentiated through the T
  real optax updates (`jaxfer.meta.unroll`: lax.scan or Python loop, with
  jax.checkpoint per segment).
* ``krr``: kernel ridge regression on the features of a pool of networks
  trained online on the synthetic images (FRePo): no inner unroll.
  pred = K_rs (K_ss + reg * tr(K_ss) / n * I)^-1 Y_s, mean squared error.

Optional DSA augmentation: one draw per outer step, applied to the synthetic
images (every inner step) and the real batch alike (`jaxfer.meta.augment`).

The loop's method (the synthetic set's start from a config, the evaluation
protocol, the export of the set) is `jaxfer/methods/distill.py`.
"""

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxfer.core import losses
from jaxfer.core import parallel
from jaxfer.meta import augment
from jaxfer.meta import unroll
from jaxfer.models import net as net_lib


@flax.struct.dataclass
class Pool:
  """Networks trained online on the synthetic images (stacked on axis 0)."""

  params: Any
  batch_stats: Any
  opt_state: Any
  age: jax.Array  # int32 [P]: steps since the member's initialisation


@flax.struct.dataclass
class State:
  step: jax.Array
  learned: dict  # {"images", "raw_lrs", "label_logits"}
  labels: jax.Array  # int32 [N], class-major (n per class)
  opt_state: Any  # the outer optimizer's
  pool: Pool | None = None


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Statics of a distillation step: `config.distill`'s fields under their
  own names, with the run's num_classes and seed (built by
  `jaxfer.methods.distill.hyper`; the defaults are `config.distill`'s in
  jaxfer/core/defaults.py only)."""

  objective: str
  num_classes: int
  steps_per_epoch: int
  epochs: int
  init: str
  learn_labels: bool
  remat: bool
  segment: int
  scan: bool
  augment: bool
  krr_reg: float
  pool_max_age: int
  seed: int

  @property
  def inner_steps(self) -> int:
    return self.steps_per_epoch * self.epochs


def targets(learned: dict, labels, hp: Hyper):
  """The synthetic images' target distributions."""
  if hp.learn_labels:
    return jax.nn.softmax(learned["label_logits"])
  return jax.nn.one_hot(labels, hp.num_classes)


def soft_loss(params, batch_stats, batch, *, apply_fn):
  logits, _, stats = net_lib.forward(
    apply_fn, params, batch_stats, batch["image"], train=True
  )
  return jnp.mean(losses.soft_xent(logits, batch["target"])), (stats, None)


def _groups(x, hp: Hyper):
  """[N, ...] class-major -> [S, N / S, ...]: group g holds the images of
  each class whose index in the class is g modulo S."""
  s, c = hp.steps_per_epoch, hp.num_classes
  x = x.reshape((c, -1, s) + x.shape[1:])
  return jnp.moveaxis(x, 2, 0).reshape((s, -1) + x.shape[3:])


def inner_train(
  init: unroll.Inner, images, target, lrs, aug, *, apply_fn, tx, hp: Hyper
):
  """T inner steps on the synthetic images; step t uses group t mod S and
  the learning-rate scale lrs[t]. Returns (network, losses [T])."""
  groups, group_targets = _groups(images, hp), _groups(target, hp)
  xs = {"group": jnp.arange(hp.inner_steps) % hp.steps_per_epoch, "lr": lrs}

  def step(carry, x):
    img = groups[x["group"]]
    if aug is not None:
      img = augment.apply(aug, img)
    return unroll.train_step(
      carry,
      {"image": img, "target": group_targets[x["group"]]},
      loss_fn=lambda p, s, b: soft_loss(p, s, b, apply_fn=apply_fn),
      tx=tx,
      lr_scale=x["lr"],
    )

  final, (step_losses, _) = unroll.unroll(
    step, init, xs, remat=hp.remat, segment=hp.segment, scan=hp.scan
  )
  return final, step_losses


def unroll_loss(
  learned: dict,
  labels,
  init: unroll.Inner,
  real: dict,
  aug,
  *,
  apply_fn,
  tx,
  hp: Hyper,
):
  """Real-batch cross-entropy of a network trained on the synthetic set."""
  net, _ = inner_train(
    init,
    learned["images"],
    targets(learned, labels, hp),
    jax.nn.softplus(learned["raw_lrs"]),
    aug,
    apply_fn=apply_fn,
    tx=tx,
    hp=hp,
  )
  x = real["image"] if aug is None else augment.apply(aug, real["image"])
  logits, _, _ = net_lib.forward(
    apply_fn, net.params, net.batch_stats, x, train=True
  )
  return jnp.mean(losses.xent(logits, real["label"]))


def krr_predict(f_support, f_query, y_support, reg: float):
  """Kernel ridge regression with the linear kernel of features:
  K_qs (K_ss + reg * tr(K_ss) / n * I)^-1 Y_s."""
  k_ss = f_support @ f_support.T
  n = k_ss.shape[0]
  ridge = reg * jnp.trace(k_ss) / n
  alpha = jax.scipy.linalg.solve(
    k_ss + ridge * jnp.eye(n), y_support, assume_a="pos"
  )
  return (f_query @ f_support.T) @ alpha


def krr_loss(
  learned: dict,
  labels,
  member: unroll.Inner,
  real: dict,
  aug,
  *,
  apply_fn,
  hp: Hyper,
):
  """Mean squared error of the KRR prediction of the real batch's one-hot
  labels from the synthetic set, on a pool member's features."""
  xs, xr = learned["images"], real["image"]
  if aug is not None:
    xs, xr = augment.apply(aug, xs), augment.apply(aug, xr)
  feats = lambda x: net_lib.forward(
    apply_fn, member.params, member.batch_stats, x, train=False
  )[1]
  pred = krr_predict(
    feats(xs), feats(xr), targets(learned, labels, hp), hp.krr_reg
  )
  onehot = jax.nn.one_hot(real["label"], hp.num_classes)
  return jnp.mean(jnp.sum((pred - onehot) ** 2, -1))


def _member(pool: Pool, i) -> unroll.Inner:
  take = lambda t: jax.tree.map(lambda a: a[i], t)
  return unroll.Inner(
    take(pool.params), take(pool.batch_stats), take(pool.opt_state)
  )


def fresh(rng, model, example, tx) -> unroll.Inner:
  """A newly initialised network with its optimizer state."""
  v = model.init(rng, example, train=False)
  return unroll.Inner(
    v["params"], v.get("batch_stats", {}), tx.init(v["params"])
  )


def init_pool(rng, size: int, model, example, tx, max_age: int) -> Pool:
  nets = jax.vmap(lambda k: fresh(k, model, example, tx))(
    jax.random.split(rng, size)
  )
  ages = (jnp.arange(size) * max_age) // size  # staggered resets
  return Pool(
    nets.params, nets.batch_stats, nets.opt_state, ages.astype(jnp.int32)
  )


def update_pool(
  pool: Pool, i, images, target, rng, aug, *, model, tx, lr, hp: Hyper
) -> Pool:
  """Member i takes one step on the synthetic images, or restarts from a
  fresh initialisation once `pool_max_age` steps old."""
  x = images if aug is None else augment.apply(aug, images)
  trained, _ = unroll.train_step(
    _member(pool, i),
    {"image": x, "target": target},
    loss_fn=lambda p, s, b: soft_loss(p, s, b, apply_fn=model.apply),
    tx=tx,
    lr_scale=lr,
  )
  reset = pool.age[i] + 1 >= hp.pool_max_age
  new = jax.tree.map(
    lambda f, t: jnp.where(reset, f, t),
    fresh(rng, model, images[:1], tx),
    trained,
  )
  put = lambda stack, one: jax.tree.map(lambda a, b: a.at[i].set(b), stack, one)
  return Pool(
    put(pool.params, new.params),
    put(pool.batch_stats, new.batch_stats),
    put(pool.opt_state, new.opt_state),
    pool.age.at[i].set(jnp.where(reset, 0, pool.age[i] + 1)),
  )


def distill_step(
  state: State,
  batch,
  rng,
  *,
  model,
  inner_tx,
  outer_tx,
  pool_lr: float,
  hp: Hyper,
  axis_name=None,
):
  """One outer update of the synthetic set. Pure.

  Args:
    state: the State.
    batch: a real batch {"image", "label"} (sharded on the data axis).
    rng: the run's base key (folded with the step).
    model: the flax module trained in the inner loop / giving features.
    inner_tx: the inner optax chain (learning rate 1, scaled per step).
    outer_tx: the outer optimizer over `state.learned`.
    pool_lr: the pool members' learning rate.
    hp: the statics.
    axis_name: under pmap/shard_map, the mapped data axis.
  """
  rng = parallel.step_rng(rng, state.step)
  k_init, k_aug, k_pool = jax.random.split(rng, 3)
  aug = augment.sample(k_aug) if hp.augment else None
  real = {"image": batch["image"], "label": batch["label"]}
  pool = state.pool
  i = state.step % (1 if pool is None else pool.age.shape[0])
  example = state.learned["images"][:1]
  if hp.objective == "krr":
    loss_fn = lambda lrn: krr_loss(
      lrn,
      state.labels,
      _member(pool, i),
      real,
      aug,
      apply_fn=model.apply,
      hp=hp,
    )
  else:
    if hp.init == "pool":
      p = _member(pool, i)
      init = unroll.Inner(p.params, p.batch_stats, inner_tx.init(p.params))
    else:
      key = jax.random.key(hp.seed) if hp.init == "fixed" else k_init
      init = fresh(key, model, example, inner_tx)
    loss_fn = lambda lrn: unroll_loss(
      lrn,
      state.labels,
      init,
      real,
      aug,
      apply_fn=model.apply,
      tx=inner_tx,
      hp=hp,
    )
  loss, grads = jax.value_and_grad(loss_fn)(state.learned)
  if axis_name is not None:
    loss, grads = jax.lax.pmean((loss, grads), axis_name)
  updates, opt_state = outer_tx.update(grads, state.opt_state, state.learned)
  learned = optax.apply_updates(state.learned, updates)
  if pool is not None:
    pool = update_pool(
      pool,
      i,
      jax.lax.stop_gradient(learned["images"]),
      targets(learned, state.labels, hp),
      k_pool,
      aug,
      model=model,
      tx=inner_tx,
      lr=pool_lr,
      hp=hp,
    )
  metrics = {
    "loss": loss,
    "lr_mean": jnp.mean(jax.nn.softplus(learned["raw_lrs"])),
    "image_grad_norm": optax.tree_utils.tree_norm(grads["images"]),
  }
  return State(state.step + 1, learned, state.labels, opt_state, pool), metrics
