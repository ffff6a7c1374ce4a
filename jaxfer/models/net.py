"""One network's arrays and its forward: what the methods and the
meta-gradient engines share.

`Net` is the training state of one network (parameters, BatchNorm
statistics, optimizer state, optional EMA); `forward` runs a model in train
or eval mode and threads BatchNorm statistics, so every unrolled step can
carry them.
"""

from typing import Any

import flax
import optax

from jaxfer.core import optim


@flax.struct.dataclass
class Net:
  """One network's parameters, BatchNorm statistics, optimizer state and EMA.

  Arrays only (jit-, donate- and Orbax-friendly). `batch_stats` is an empty
  dict for models without BatchNorm; `ema` is None without EMA.
  """

  params: Any
  batch_stats: Any
  opt_state: Any
  ema: Any = None


def variables(params, batch_stats) -> dict:
  """Flax variables from parameters and (possibly empty) BatchNorm stats."""
  return {
    "params": params,
    **({"batch_stats": batch_stats} if batch_stats else {}),
  }


def forward(apply_fn, params, batch_stats, images, *, train: bool):
  """(logits, features, new batch_stats) of a model on images."""
  v = variables(params, batch_stats)
  if train and batch_stats:
    (logits, features), new = apply_fn(
      v, images, train=True, mutable=["batch_stats"]
    )
    return logits, features, new["batch_stats"]
  logits, features = apply_fn(v, images, train=train)
  return logits, features, batch_stats


def init_net(rng, model, images, tx, *, ema: bool) -> Net:
  """Initial Net of `model` for inputs shaped like `images`."""
  v = model.init(rng, images, train=False)
  params, batch_stats = v["params"], v.get("batch_stats", {})
  ema_v = {"params": params, "batch_stats": batch_stats} if ema else None
  return Net(params, batch_stats, tx.init(params), ema_v)


def apply_updates(
  net: Net, grads, batch_stats, tx, *, ema_decay: float, step
) -> Net:
  """One optimizer step, and the EMA's update (`optim.ema_variables`) at
  the state's step `step`."""
  updates, opt_state = tx.update(grads, net.opt_state, net.params)
  params = optax.apply_updates(net.params, updates)
  ema = net.ema
  if ema is not None:
    ema = optim.ema_variables(ema, params, batch_stats, ema_decay, step)
  return Net(params, batch_stats, opt_state, ema)
