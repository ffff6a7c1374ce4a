"""A fresh run's networks from pretrained weights (`config.init_from`).

`config.init_from` names one of:

* a torchvision ResNet-18/34/50 state dict (`.pth`, `.safetensors`), into
  every network of the method (jaxfer's `resnet` with `stem="imagenet"`);
* a Meta-Face2Exp checkpoint (`torch.save` of `teacher_state_dict`,
  `student_state_dict`, ...): teacher and student into `method="face2exp"`'s
  teacher and student; any other method takes the student (the network
  the reference evaluates);
* a jaxfer workdir: its best checkpoint's networks (face2exp to face2exp
  network by network; otherwise its first evaluated model into every
  network), to fine-tune a trained model on another dataset;
* ``zoo:NAME``, a model shipped in the package (``zoo:fer2013_vgg``), or
  any ``NAME.msgpack`` written by ``python -m jaxfer.zoo`` with its card
  ``NAME.json`` beside it: its weights into every network (the shipped
  files' digests are checked when `jaxfer.zoo` loads them for inference;
  here a card whose network is not this config's is an error).

A head whose class count differs is re-initialised (logged); a head
missing from the file is an error unless `config.init_allow_missing_head`.
Only a fresh run loads: a resumed run continues from its own checkpoint.
(The field is `config.init_from`, not `config.model.init_from`:
`config.model` holds the module's constructor arguments, and every config
replaces it whole.)
"""

import dataclasses
import json
import pathlib

from flax import serialization
import jax
import numpy as np

from jaxfer import models
from jaxfer.loop import restore
from jaxfer.models import net as net_lib
from jaxfer.models import resnet
from jaxfer.models import torch_import


def nets(state) -> list[str]:
  """The state's fields that hold a network (`net_lib.Net`)."""
  return [
    f.name
    for f in dataclasses.fields(state)
    if isinstance(getattr(state, f.name), net_lib.Net)
  ]


def _with(net: net_lib.Net, variables: dict) -> net_lib.Net:
  params = jax.tree.map(np.asarray, variables["params"])
  stats = jax.tree.map(np.asarray, variables.get("batch_stats", {}))
  ema = None if net.ema is None else {"params": params, "batch_stats": stats}
  return net.replace(params=params, batch_stats=stats, ema=ema)


def _template(net: net_lib.Net) -> dict:
  return {
    "params": jax.device_get(net.params),
    "batch_stats": jax.device_get(net.batch_stats),
  }


def _from_torch(config, roles: dict, target: str, template: dict, source: str):
  # The built module: its dataclass holds the model fields' defaults.
  m = models.build(config.model, config.data.num_classes)
  stem = getattr(m, "stem", None)
  if config.model.name != "resnet" or stem != "imagenet":
    raise ValueError(
      f"config.init_from={source}: PyTorch weights load into "
      "config.model.name='resnet' with stem='imagenet' (torchvision's "
      f"layout); this config has name={config.model.name!r}, "
      f"stem={stem!r}"
    )
  stages = tuple(m.stages or resnet.STAGES[m.depth])
  return torch_import.resnet_variables(
    roles[target],
    template,
    stages=stages,
    bottleneck=m.depth == 50,
    allow_missing_head=config.init_allow_missing_head,
    source=f"{source} [{target}]: ",
  )


def _roles_for(fields: list[str], roles: list[str], method: str) -> dict:
  """{state field: role of the file} for each network."""
  if "model" in roles:
    return {f: "model" for f in fields}
  if method == "face2exp":
    return {f: f for f in fields if f in roles}
  return {f: "student" for f in fields}


# The models shipped in the package (`jaxfer.zoo`'s folder; a path, not an
# import: the zoo sits above the loop).
SHIPPED = pathlib.Path(__file__).resolve().parents[1] / "zoo"
ZOO = "zoo:"


def _shipped(config, source: str, state, fields):
  """`zoo:NAME` or a `NAME.msgpack` beside its card `NAME.json`."""
  if source.startswith(ZOO):
    name = source[len(ZOO) :]
    path = SHIPPED / f"{name}.msgpack"
    if not path.exists():
      known = sorted(p.stem for p in SHIPPED.glob("*.msgpack"))
      raise ValueError(
        f"config.init_from={source}: no shipped model {name!r} "
        f"(shipped: {', '.join(ZOO + k for k in known) or 'none'})"
      )
  else:
    path = pathlib.Path(source).expanduser()
  card_path = path.with_suffix(".json")
  if not card_path.exists():
    raise ValueError(
      f"config.init_from={source}: {card_path} is missing (a .msgpack "
      "loads with the card python -m jaxfer.zoo writes beside it)"
    )
  card = json.loads(card_path.read_text())
  mine = json.loads(config.model.to_json())  # tuples as the card's lists
  if card["config"]["model"] != mine:
    raise ValueError(
      f"config.init_from={source}: its network is {card['config']['model']}"
      f", this config's is {mine} (start from the "
      "config it was trained with, e.g. supervised_fer2013:vgg)"
    )
  v = serialization.msgpack_restore(path.read_bytes())
  out, notes = {}, []
  for f in fields:
    out[f], n = _fitted(config, state, f, v, len(card["class_names"]), source)
    notes += n
  return out, notes


def _fitted(config, state, f: str, v, src_classes: int, where: str):
  """(variables `v` fitted to the state's network `f`: a head of another
  class count re-initialised; any other shape is an error, log lines)."""
  t = _template(getattr(state, f))
  v = {"params": v["params"], "batch_stats": v.get("batch_stats", {})}
  notes = []
  if src_classes != config.data.num_classes and "Dense_0" in v["params"]:
    v["params"] = {**v["params"], "Dense_0": t["params"]["Dense_0"]}
    notes.append(
      f"{where}: {src_classes} classes -> {config.data.num_classes}: the "
      "head is re-initialised"
    )
  bad = [
    f"{'/'.join(str(getattr(k, 'key', k)) for k in p)}: "
    f"{np.shape(a)} vs {np.shape(b)}"
    for (p, a), b in zip(
      jax.tree_util.tree_leaves_with_path(v), jax.tree.leaves(t)
    )
    if np.shape(a) != np.shape(b)
  ]
  if jax.tree.structure(v) != jax.tree.structure(t) or bad:
    raise ValueError(
      f"config.init_from={where}: its network does not fit this config's "
      f"model ({config.model.name})" + (f": {bad}" if bad else ": other layers")
    )
  return v, notes + [f"{f} <- {where}"]


def _from_workdir(config, path: pathlib.Path, state, fields):
  src_config, _, method, src_state = restore.load(str(path))
  evals = method.eval_variables(src_state)
  if config.method == "face2exp" and src_config.method == "face2exp":
    pick = {f: f for f in fields}
  else:
    first = next(iter(evals))
    pick = {f: first for f in fields}
  out, notes = {}, []
  for f, name in pick.items():
    out[f], n = _fitted(
      config,
      state,
      f,
      jax.device_get(evals[name]),
      src_config.data.num_classes,
      f"{path} [{name}]",
    )
    notes += n
  return out, notes


def load_into(config, state):
  """(state with its networks loaded from `config.init_from`, log lines)."""
  source = config.init_from
  if not source:
    return state, []
  fields = nets(state)
  if not fields:
    raise ValueError(
      f"config.init_from: method {config.method!r} has no network to initialise"
    )
  path = pathlib.Path(source).expanduser()
  if source.startswith(ZOO) or path.suffix == ".msgpack":
    loaded, notes = _shipped(config, source, state, fields)
  elif path.is_dir():
    loaded, notes = _from_workdir(config, path, state, fields)
  else:
    roles = torch_import.read(path)
    pick = _roles_for(fields, list(roles), config.method)
    missing = [f for f in fields if f not in pick]
    if missing:
      raise ValueError(
        f"config.init_from={source}: nothing in the file for "
        f"{missing}; it holds {sorted(roles)}"
      )
    loaded, notes = {}, []
    for f, role in pick.items():
      loaded[f], n = _from_torch(
        config, roles, role, _template(getattr(state, f)), str(path)
      )
      notes += n + [f"{f} <- {path} [{role}]"]
  for f, v in loaded.items():
    state = state.replace(**{f: _with(getattr(state, f), v)})
  return state, notes
