r"""`python -m jaxfer.bench torch`: jaxfer's steps against the PyTorch
reference's, same network, same batch, one process, interleaved.

  pip install -e ".[torch]"      # torch is not a dependency of jaxfer
  python -m jaxfer.bench torch --config configs/face2exp_fer2013.py \
      --steps 5 --rounds 3 --out /tmp/bench_torch.json

The PyTorch side is written here from the reference's training loop
(Face2Exp `src/main.py`, the MPL-pytorch loop of 2021; ../shared/
REFERENCE.md section 6): teacher forward on [labeled; weak; strong], UDA
loss on the weak view's soft labels, student forward on [labeled; strong]
trained on the weak view's argmax, student SGD step, a no-grad student
forward on the labeled batch for L_new, the feedback
(L_old - L_new) * CE(strong, argmax strong), teacher SGD step. It runs
eager and under `torch.compile` (teacher and student modules compiled; the
optimizer steps eager, as a user would add it to that loop). The plain
supervised step (forward, backward, SGD) is timed on both sides too.

Only the config's ConvNet (`config.model.name == "convnet"`) has a PyTorch
twin here: conv 3x3 (bias) - norm - ReLU - 2x2 average pool, per block,
then a linear head, the same parameter count (checked). torch is imported
when the command runs, never by the library.
"""

import time

import numpy as np

from jaxfer.bench import measure
from jaxfer.bench import meta


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit(
      f"bench torch needs PyTorch: pip install -e '.[torch]' ({e})"
    ) from e
  return torch


def convnet(torch, cfg, num_classes: int, image_size: int, channels: int):
  """jaxfer's ConvNet (`jaxfer.models.convnet`) as a torch module."""
  nn = torch.nn
  if cfg.name != "convnet":
    raise ValueError(
      "bench torch has a PyTorch twin of the ConvNet only; "
      f"got config.model.name={cfg.name!r}"
    )
  if cfg.norm not in ("batch", "none"):
    raise ValueError(
      "bench torch's ConvNet twin has norm 'batch' or 'none' "
      f"only; got config.model.norm={cfg.norm!r}"
    )
  layers, c, size = [], channels, image_size
  for _ in range(cfg.depth):
    layers += [
      nn.Conv2d(c, cfg.width, 3, padding=1),
      nn.BatchNorm2d(cfg.width, eps=1e-5, momentum=0.1)
      if cfg.norm == "batch"
      else nn.Identity(),
      nn.ReLU(),
      nn.AvgPool2d(2),
    ]
    c, size = cfg.width, size // 2
  layers += [nn.Flatten(), nn.Linear(c * size * size, num_classes)]
  return nn.Sequential(*layers)


def _sgd(torch, params, o):
  return torch.optim.SGD(
    params,
    lr=o.lr,
    momentum=o.momentum,
    nesterov=o.nesterov,
    weight_decay=o.weight_decay,
  )


def mpl_step(
  torch,
  teacher,
  student,
  t_opt,
  s_opt,
  batch,
  *,
  step: int,
  uda_weight: float,
  uda_steps: int,
  temperature: float,
):
  """One step of the reference's loop (first-order feedback, no AMP on
  CPU). Returns the teacher's loss (a float)."""
  f = torch.nn.functional
  x, y = batch["image"], batch["label"]
  xw, xs = batch["unlabeled_weak"], batch["unlabeled_strong"]
  b, n = x.shape[0], xw.shape[0]
  t_logits = teacher(torch.cat([x, xw, xs]))
  t_l, t_w, t_s = t_logits[:b], t_logits[b : b + n], t_logits[b + n :]
  t_loss_l = f.cross_entropy(t_l, y)
  soft = torch.softmax(t_w.detach() / temperature, -1)
  hard = soft.argmax(-1)
  t_loss_u = -(soft * torch.log_softmax(t_s, -1)).sum(-1).mean()
  w_u = uda_weight * min(1.0, (step + 1) / uda_steps)
  s_logits = student(torch.cat([x, xs]))
  s_l, s_s = s_logits[:b], s_logits[b:]
  l_old = f.cross_entropy(s_l.detach(), y)
  s_loss = f.cross_entropy(s_s, hard)
  s_opt.zero_grad(set_to_none=True)
  s_loss.backward()
  s_opt.step()
  with torch.no_grad():
    l_new = f.cross_entropy(student(x), y)
  d = l_old - l_new
  t_loss = (
    t_loss_l
    + w_u * t_loss_u
    + d * f.cross_entropy(t_s, t_s.detach().argmax(-1))
  )
  t_opt.zero_grad(set_to_none=True)
  t_loss.backward()
  t_opt.step()
  return float(t_loss.detach())


def supervised_step(torch, net, opt, batch):
  """Forward, backward and SGD step on the labeled batch."""
  loss = torch.nn.functional.cross_entropy(net(batch["image"]), batch["label"])
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()
  return float(loss.detach())


def _torch_calls(torch, config, batch_np, compiled: bool):
  """{row: call} of the PyTorch steps (eager or torch.compile)."""
  d = config.data
  make = lambda: convnet(
    torch, config.model, d.num_classes, d.image_size, d.channels
  ).train()
  nchw = {
    k: torch.from_numpy(
      np.ascontiguousarray(
        v.transpose(0, 3, 1, 2) if v.ndim == 4 else v.astype(np.int64)
      )
    )
    for k, v in batch_np.items()
    if k != "unlabeled_index"
  }
  teacher, student, sup = make(), make(), make()
  t_opt = _sgd(torch, teacher.parameters(), config.optimizer)
  s_opt = _sgd(torch, student.parameters(), config.face2exp.student_optimizer)
  p_opt = _sgd(torch, sup.parameters(), config.optimizer)
  if compiled:
    teacher, student, sup = (torch.compile(m) for m in (teacher, student, sup))
  uda = config.face2exp.uda
  counter = {"step": 0}

  def mpl():
    mpl_step(
      torch,
      teacher,
      student,
      t_opt,
      s_opt,
      nchw,
      step=counter["step"],
      uda_weight=uda.weight,
      uda_steps=uda.steps,
      temperature=uda.temperature,
    )
    counter["step"] += 1

  tag = "torch.compile" if compiled else "torch eager"
  return {
    f"{tag} MPL step": mpl,
    f"{tag} supervised": lambda: supervised_step(torch, sup, p_opt, nchw),
  }, teacher


def _jax_parameters(config) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxfer import models  # pylint: disable=g-import-not-at-top

  d = config.data
  model = models.build(config.model, d.num_classes)
  shapes = jax.eval_shape(
    lambda: model.init(
      jax.random.key(0),
      jnp.zeros((1, d.image_size, d.image_size, d.channels)),
      train=False,
    )["params"]
  )
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


def run(
  config,
  steps: int,
  rounds: int = 3,
  compiled: tuple[bool, ...] = (False, True),
) -> dict:
  """Every row compiled (or warmed up), then timed in interleaved rounds;
  prints the table with each row's time over jaxfer's `first_order`."""
  torch = _torch()
  import jax  # pylint: disable=g-import-not-at-top

  batch = meta._batch(config, config.mu, np.random.default_rng(0))  # pylint: disable=protected-access
  calls, facts = {}, {}
  for name, c, pool in meta.variants(
    config, ks=(), scan_ks=(), dtm_policies=()
  ):
    if name in ("supervised", "first_order", "exact_jvp"):
      facts[f"jaxfer {name}"], calls[f"jaxfer {name}"] = meta.prepare(c, pool)
  for c in compiled:
    t0 = time.perf_counter()
    rows, teacher = _torch_calls(torch, config, batch, c)
    for name, call in rows.items():
      call()  # torch.compile compiles here
      facts[name] = {"compile_sec": time.perf_counter() - t0}
      t0 = time.perf_counter()
    calls.update(rows)
  n_torch = sum(p.numel() for p in teacher.parameters())
  n_jax = _jax_parameters(config)
  if n_torch != n_jax:
    raise AssertionError(
      f"the PyTorch twin has {n_torch} parameters, jaxfer's model {n_jax}"
    )
  times = measure.time_rounds(calls, steps, rounds)
  base = "jaxfer first_order"
  out = {
    "torch": torch.__version__,
    "jax": jax.__version__,
    "torch_threads": torch.get_num_threads(),
    "devices": [str(x) for x in jax.devices()],
    "model": config.model.to_dict(),
    "torch_parameters": n_torch,
    "batch_size": config.data.batch_size,
    "mu": config.mu,
    "rounds": rounds,
    "steps_per_round": steps,
    "rows": {},
  }
  print(
    f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
    f"jax {jax.__version__}; ConvNet-{config.model.depth} "
    f"({n_torch:,} parameters), batch {config.data.batch_size} labeled"
    f" + {config.data.batch_size * config.mu} unlabeled"
  )
  print(f"{'step':<30}{'median s':>10}{'x jaxfer first_order (rounds)':>32}")
  for name in calls:
    s = measure.ratio_spread(times[name], times[base])
    out["rows"][name] = {
      **facts[name],
      "median_sec": measure.median(times[name]),
      "round_medians_sec": measure.round_medians(times[name]),
      "over_jaxfer_first_order": s["median"],
      "over_jaxfer_first_order_spread": s,
    }
    print(
      f"{name:<30}{measure.median(times[name]):>10.3f}"
      f"{measure.spread_text(s):>32}",
      flush=True,
    )
  pairs = [
    (a, f"{tag} {step}")
    for tag in ("torch eager", "torch.compile")
    for a, step in (
      ("jaxfer supervised", "supervised"),
      ("jaxfer first_order", "MPL step"),
      ("jaxfer exact_jvp", "MPL step"),
    )
    if f"{tag} {step}" in calls
  ]
  for a, b in pairs:
    s = measure.ratio_spread(times[a], times[b])
    out[f"{a} / {b}"] = s
    print(f"{a} / {b}: {measure.spread_text(s)}")
  return out
