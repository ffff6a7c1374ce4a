"""PyTorch weights into jaxfer's ResNet: torchvision ResNet-18/34/50 state
dicts and the Meta-Face2Exp checkpoint format, every tensor accounted for.

Files: `.safetensors` is read here without torch (the format is an 8-byte
header length, a JSON header and the raw tensors); `.pth` / `.pt` /
`.pth.tar` need torch (`torch.load(weights_only=True)`), imported only then.

The mapping, torchvision name -> flax variable (jaxfer.models.resnet):
`conv1` / `bn1` -> the stem's `Conv_0` / `BatchNorm_0`; `layer{s}.{j}` ->
the (flat-numbered) `BasicBlock_n` or `Bottleneck_n`; inside a block
`conv{k}` / `bn{k}` -> `Conv_{k-1}` / `BatchNorm_{k-1}`, `downsample.0` /
`.1` -> the next `Conv` / `BatchNorm`; `fc` -> `Dense_0`. Convolutions
OIHW -> HWIO, linear (out, in) -> (in, out); BatchNorm `weight`, `bias`,
`running_mean`, `running_var` -> `scale`, `bias`, `mean`, `var`
(`num_batches_tracked` is read and dropped). A grey model (one input
channel) takes an RGB stem summed over its input channels, which gives
the same response to a grey image repeated on three channels.
"""

import json
import pathlib
import re

import numpy as np

_DTYPES = {
  "F64": np.float64,
  "F32": np.float32,
  "F16": np.float16,
  "BF16": None,
  "I64": np.int64,
  "I32": np.int32,
  "I16": np.int16,
  "I8": np.int8,
  "U8": np.uint8,
  "BOOL": np.bool_,
}

# The Meta-Face2Exp (MPL-pytorch) checkpoint: torch.save of a dict.
FACE2EXP_KEYS = {
  "teacher_state_dict": "teacher",
  "student_state_dict": "student",
  "avg_state_dict": "student_ema",
}


def read_safetensors(path) -> dict:
  """{name: array} of a .safetensors file (bfloat16 widened to float32)."""
  data = pathlib.Path(path).read_bytes()
  if len(data) < 8:
    raise ValueError(f"{path}: not a safetensors file (too short)")
  n = int.from_bytes(data[:8], "little")
  try:
    header = json.loads(data[8 : 8 + n])
  except ValueError as e:
    raise ValueError(f"{path}: not a safetensors file ({e})") from e
  out, base = {}, 8 + n
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    raw = data[base + start : base + end]
    if info["dtype"] == "BF16":
      a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(
        np.float32
      )
    elif _DTYPES.get(info["dtype"]) is None:
      raise ValueError(
        f"{path}: tensor {name!r} has dtype {info['dtype']}, "
        "which jaxfer does not read"
      )
    else:
      a = np.frombuffer(raw, _DTYPES[info["dtype"]])
    out[name] = a.reshape(info["shape"]).copy()
  return out


def _read_torch(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError(
      f"{path}: reading a PyTorch pickle needs torch (pip "
      "install -e '.[torch]'), or save the state dict as "
      ".safetensors, which jaxfer reads without it"
    ) from e
  obj = torch.load(path, map_location="cpu", weights_only=True)

  def arrays(sd):
    return {
      k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
      for k, v in sd.items()
      if hasattr(v, "numpy")
    }

  if isinstance(obj, dict) and any(k in obj for k in FACE2EXP_KEYS):
    return {
      role: arrays(obj[k])
      for k, role in FACE2EXP_KEYS.items()
      if obj.get(k) is not None
    }
  if isinstance(obj, dict) and "state_dict" in obj:
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise ValueError(
      f"{path}: holds a {type(obj).__name__}, not a state "
      "dict or a Meta-Face2Exp checkpoint"
    )
  return {"model": arrays(obj)}


def read(path) -> dict:
  """{role: {name: array}}: role "model" for a plain state dict, or
  "teacher", "student" (and "student_ema") for a Meta-Face2Exp checkpoint.
  A DataParallel `module.` prefix is removed."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"config.model.init_from: no file {path}")
  if path.suffix == ".safetensors":
    roles = {"model": read_safetensors(path)}
  else:
    roles = _read_torch(path)
  return {
    role: {k.removeprefix("module."): v for k, v in sd.items()}
    for role, sd in roles.items()
  }


def _flax_name(key: str, block: str, blocks_before: dict) -> str | None:
  """The flax path ("a/b/c") of one torchvision key, or None."""
  m = re.fullmatch(r"(conv1|bn1|fc)\.(\w+)", key)
  if m:
    mod = {"conv1": "Conv_0", "bn1": "BatchNorm_0", "fc": "Dense_0"}
    return f"{mod[m[1]]}/{m[2]}"
  m = re.fullmatch(r"layer(\d)\.(\d+)\.(conv|bn)(\d)\.(\w+)", key)
  convs = 3 if block == "Bottleneck" else 2
  if m and int(m[1]) in blocks_before:
    n = blocks_before[int(m[1])] + int(m[2])
    kind = "Conv" if m[3] == "conv" else "BatchNorm"
    return f"{block}_{n}/{kind}_{int(m[4]) - 1}/{m[5]}"
  m = re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)", key)
  if m and int(m[1]) in blocks_before:
    n = blocks_before[int(m[1])] + int(m[2])
    kind = "Conv" if m[3] == "0" else "BatchNorm"
    return f"{block}_{n}/{kind}_{convs}/{m[4]}"
  return None


_LEAF = {
  "Conv": {"weight": ("params", "kernel")},
  "Dense": {"weight": ("params", "kernel"), "bias": ("params", "bias")},
  "BatchNorm": {
    "weight": ("params", "scale"),
    "bias": ("params", "bias"),
    "running_mean": ("batch_stats", "mean"),
    "running_var": ("batch_stats", "var"),
  },
}


def _convert(leaf: str, a: np.ndarray, want: tuple) -> np.ndarray:
  if leaf == "kernel" and a.ndim == 4:  # OIHW -> HWIO
    a = a.transpose(2, 3, 1, 0)
    if want[2] == 1 and a.shape[2] == 3:  # RGB stem, grey model
      a = a.sum(axis=2, keepdims=True)
  elif leaf == "kernel" and a.ndim == 2:  # (out, in) -> (in, out)
    a = a.T
  return a


def resnet_variables(
  state_dict: dict,
  template: dict,
  *,
  stages,
  bottleneck: bool,
  allow_missing_head: bool = False,
  source: str = "",
) -> tuple[dict, list[str]]:
  """A torchvision ResNet state dict as flax variables shaped like
  `template` ({"params", "batch_stats"} of jaxfer's ResNet, imagenet stem).

  Every key must land and every template leaf must be filled: the error
  lists what does not. A head (`fc`) of another class count is left at the
  template's initial values and said so; a missing head is an error unless
  `allow_missing_head`. Returns (variables, log lines).
  """
  block = "Bottleneck" if bottleneck else "BasicBlock"
  blocks_before = {s + 1: sum(stages[:s]) for s in range(len(stages))}
  flat = {}
  for col in ("params", "batch_stats"):
    for path, leaf in _flatten(template.get(col, {})):
      flat[(col, path)] = leaf
  filled, unmapped, mismatched, notes = {}, [], [], []
  for key, a in state_dict.items():
    if key.endswith("num_batches_tracked"):
      continue
    name = _flax_name(key, block, blocks_before)
    kind = name.split("/")[-2].split("_")[0] if name else None
    target = _LEAF.get(kind, {}).get(name.split("/")[-1]) if name else None
    if target is None:
      unmapped.append(key)
      continue
    col, leaf = target
    path = "/".join(name.split("/")[:-1] + [leaf])
    if (col, path) not in flat:
      unmapped.append(key)
      continue
    want = tuple(flat[(col, path)].shape)
    got = _convert(leaf, np.asarray(a, np.float32), want)
    if tuple(got.shape) != want:
      if path.startswith("Dense_0/"):
        if not any("re-initialised" in n for n in notes):
          notes.append(
            f"{source}head {key} {tuple(a.shape)} does not fit "
            f"{want}: the head is re-initialised"
          )
        continue
      hint = (
        " (a 7x7 stem: config.model.stem='imagenet')"
        if key == "conv1.weight"
        else ""
      )
      mismatched.append(
        f"{key}: file {tuple(a.shape)} -> {tuple(got.shape)}"
        f", jaxfer {path} wants {want}{hint}"
      )
      continue
    filled[(col, path)] = got
  missing = [f"{c}/{p}" for (c, p) in flat if (c, p) not in filled]
  head_missing = [m for m in missing if "/Dense_0/" in f"/{m}"]
  head_refit = any("re-initialised" in n for n in notes)
  if head_missing and (allow_missing_head or head_refit):
    missing = [m for m in missing if m not in head_missing]
    if not head_refit:
      notes.append(
        f"{source}no head (fc) in the file: the head is "
        "initialised afresh (allow_missing_head)"
      )
  problems = []
  if unmapped:
    problems.append(f"keys that map to no jaxfer parameter: {unmapped}")
  if mismatched:
    problems.append("shape mismatches: " + "; ".join(mismatched))
  if missing:
    problems.append(
      f"jaxfer parameters nothing fills: {missing}"
      + (
        " (config.model.init_allow_missing_head=True "
        "initialises a missing head)"
        if head_missing
        else ""
      )
    )
  if problems:
    raise ValueError(
      f"{source}the state dict does not fit jaxfer's "
      f"ResNet (imagenet stem): " + "; ".join(problems)
    )
  out = {
    col: _unflatten(
      {
        p: (filled.get((c, p), np.asarray(leaf)))
        for (c, p), leaf in flat.items()
        if c == col
      }
    )
    for col in ("params", "batch_stats")
    if template.get(col)
  }
  return out, notes


def _flatten(tree, prefix=""):
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else k
    if isinstance(v, dict) or hasattr(v, "items"):
      yield from _flatten(v, path)
    else:
      yield path, v


def _unflatten(flat: dict) -> dict:
  out = {}
  for path, v in flat.items():
    d = out
    *parents, leaf = path.split("/")
    for p in parents:
      d = d.setdefault(p, {})
    d[leaf] = v
  return out
