"""The one training loop. It does not know which method it runs.

`run(config, workdir)` serves the CLI, the tests and the notebooks: it builds
the data, the model and the method's pure functions, hands the step to a
data-parallel runner (`jaxfer/core/parallel.py`: one jit over a device mesh, or
pmap), and then steps, logs, evaluates and checkpoints. A workdir that holds
checkpoints is resumed, data iterator included. Only process 0 writes
metrics and shows progress; Orbax writes checkpoints once.
"""

import json
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxfer.loop import checkpoint as ckpt_lib
from jaxfer.core import losses
from jaxfer import methods
from jaxfer.core import metrics as metrics_lib
from jaxfer import models
from jaxfer.core import parallel
from jaxfer.loop import pretrained
from jaxfer.core import report
from jaxfer.loop import runguard
from jaxfer.data import build as data_build
from jaxfer.data import pipeline


class NonFiniteLoss(RuntimeError):
  """The loss became NaN or infinite; the run stopped."""


def _global(local: dict, sharding) -> dict:
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def evaluate(apply_jit, variables: dict, batches, num_classes: int):
  """Confusion matrices and mean losses of several models on one pass.

  Returns {model name: (metrics dict, confusion matrix)}.
  """
  cms = {name: np.zeros((num_classes, num_classes), np.int64)
         for name in variables}
  loss = dict.fromkeys(variables, 0.0)
  count = 0.0
  for batch in batches:
    for name, v in variables.items():
      # Replicated outputs: every process can read the whole global batch.
      preds, labels, mask, loss_sum = map(np.asarray, apply_jit(v, batch))
      cms[name] += metrics_lib.confusion_matrix(labels, preds, num_classes,
                                                mask)
      loss[name] += float(loss_sum)
    count += float(mask.sum())
  return {name: ({"loss": loss[name] / max(count, 1),
                  **metrics_lib.summarize(cms[name])}, cms[name])
          for name in variables}


def eval_fn(apply):
  """The loop's evaluation of one batch: (predictions, labels, mask, summed
  cross-entropy); `evaluate` folds them into metrics."""
  def fn(variables, batch):
    logits, _ = apply(variables, batch["image"])
    loss = losses.xent(logits, batch["label"]) * batch["mask"]
    return jnp.argmax(logits, -1), batch["label"], batch["mask"], jnp.sum(loss)
  return fn


def _mean_metrics(pending: list) -> dict:
  fetched = jax.device_get(pending)
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def _check_finite(pending: list, first_step: int, last_ckpt) -> None:
  losses_ = np.asarray(jax.device_get([m["loss"] for m in pending]))
  bad = np.flatnonzero(~np.isfinite(losses_))
  if bad.size:
    raise NonFiniteLoss(
        f"loss is {losses_[bad[0]]} at step {first_step + bad[0] + 1}; the "
        f"run stopped. The last good checkpoint is step {last_ckpt} (lower "
        "the learning rate, or check the data)")


def _check_same_config(workdir, old: dict, new: dict) -> None:
  """A workdir resumes only with the config its checkpoint was written with
  (less `runguard.SAFE_TO_CHANGE`)."""
  changes = runguard.config_changes(old, new)
  if changes:
    lines = "\n".join(f"  {k}: {a!r} -> {b!r}" for k, a, b in changes[:20])
    raise ValueError(
        f"{workdir} holds a run with another config; these fields differ "
        f"(checkpoint -> now):\n{lines}\nUse the same config to resume it, "
        "or another --workdir for a new run (fields that may change on "
        "resume: README, 'What survives what').")


def _group_summaries(metrics: dict) -> dict:
  """Mean and std over models named "<group>/<i>" (several networks of one
  protocol): {"<group>/mean": {...}, "<group>/std": {...}}."""
  groups = {}
  for name, m in metrics.items():
    head, sep, tail = name.rpartition("/")
    if sep and tail.isdigit():
      groups.setdefault(head, []).append(m)
  out = {}
  for group, ms in groups.items():
    out[f"{group}/mean"] = {k: float(np.mean([m[k] for m in ms]))
                            for k in ms[0]}
    out[f"{group}/std"] = {k: float(np.std([m[k] for m in ms]))
                           for k in ms[0]}
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates `config`, writing to `workdir`.

  Returns:
    The last evaluation: {"<split>/<model>/<metric>": value}.
  """
  parallel.maybe_initialize(config.distributed)
  workdir = pathlib.Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  # One run per workdir: process 0 (the writer) holds its lock.
  lock = (runguard.WorkdirLock(workdir) if jax.process_index() == 0
          else None)
  try:
    return _train(config, workdir)
  finally:
    if lock is not None:
      lock.release()


def _train(config, workdir: pathlib.Path) -> dict:
  is_main = jax.process_index() == 0
  if is_main:
    print(f"jaxfer: writing to {workdir}", flush=True)
  mesh = parallel.make_mesh()
  for field in ("batch_size", "eval_batch_size"):
    parallel.check_divisible(f"config.data.{field}", config.data[field],
                             mesh.devices.size, "devices")
  repl, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

  data = data_build.build(config, process_index=jax.process_index(),
                          process_count=jax.process_count())
  axis = parallel.PMAP_AXIS if config.parallel.mode == "pmap" else None
  model = models.build(config.model, config.data.num_classes,
                       bn_axis_name=axis)
  method = methods.build(config, model, config.total_steps, axis_name=axis,
                         pool_size=data.pool_size)
  # One runner per stage of the method (jaxfer.methods.base.Method.stages).
  stage_runners = [(first, parallel.make_runner(config.parallel.mode, fn,
                                                mesh))
                   for first, fn in method.stages]
  runner = stage_runners[0][1]
  init_rng, rng = jax.random.split(jax.random.key(config.seed))
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init, out_shardings=repl)(
      init_rng, jnp.zeros((1, size, size, ch)))

  ckpt = ckpt_lib.Checkpointer(workdir, keep=config.checkpoint.keep)
  train_iter = iter(data.train)
  cfg_dict = json.loads(config.to_json_best_effort())
  old_cfg = ckpt.latest_config()
  if old_cfg is not None:
    _check_same_config(workdir, old_cfg, cfg_dict)
  restored = ckpt.restore(state)
  start, pending = 0, []
  if restored is not None:
    state, data_state, _, old_meta = restored
    train_iter.set_state(data_state)
    start = int(state.step)
    # Metrics of the steps since the last log row (a preempted run's).
    pending = [{k: np.float32(v) for k, v in m.items()}
               for m in old_meta.get("pending_metrics", [])]
    if is_main:
      print(f"jaxfer: resumed from step {start}", flush=True)
  else:
    state, notes = pretrained.load_into(config, state)
    state = jax.device_put(state, repl)
    for line in notes if is_main else ():
      print(f"jaxfer: init_from: {line}", flush=True)
  if is_main:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  writer = report.Writer(workdir, resume_step=start)
  writer.text("data", "\n\n".join(data.log))
  if is_main:
    print("\n".join(f"  {line}" for line in data.log), flush=True)

  state = runner.put_state(state)
  apply_jit = jax.jit(eval_fn(method.apply), out_shardings=repl)
  last_ckpt, result = (start or None), {}

  def do_eval(step: int, final: bool) -> float | None:
    variables = method.eval_variables(runner.host_state(state))
    best_value = None
    for split, src in data.evals.items():
      batches = (_global(b, sharded) for b in pipeline.eval_batches(
          src, data.eval_transform, batch_size=config.data.eval_batch_size,
          process_index=jax.process_index(),
          process_count=jax.process_count()))
      evals = evaluate(apply_jit, variables, batches, config.data.num_classes)
      for name, (m, cm) in evals.items():
        writer.write(step, split, m, model=name)
        result.update({f"{split}/{name}/{k}": v for k, v in m.items()})
        if is_main:
          print(f"  step {step} {split} {name}: " + ", ".join(
              f"{k} {v:.4f}" for k, v in m.items()), flush=True)
          if final or config.confusion_every_eval:
            report.confusion_png(
                cm, data.class_names,
                workdir / f"confusion_{split}_{name.replace('/', '_')}.png",
                f"{split}, {name}, step {step}: accuracy {m['accuracy']:.3f}")
      summaries = _group_summaries({k: m for k, (m, _) in evals.items()})
      for name, m in summaries.items():
        writer.write(step, split, m, model=name)
        result.update({f"{split}/{name}/{k}": v for k, v in m.items()})
      if is_main:
        for group in {n.rsplit("/", 1)[0] for n in summaries}:
          mean, std = summaries[f"{group}/mean"], summaries[f"{group}/std"]
          print(f"  step {step} {split} {group} (mean +- std): " + ", ".join(
              f"{k} {mean[k]:.4f} +- {std[k]:.4f}" for k in mean), flush=True)
      sel = config.checkpoint
      if split == sel.best_split:
        first = next(iter(variables))
        group = first.rsplit("/", 1)[0]
        chosen = summaries.get(f"{group}/mean", evals[first][0])
        best_value = chosen[sel.best_metric]
    if is_main and method.export is not None:
      method.export(runner.host_state(state), workdir, data.class_names)
    return best_value

  t_log, wait = time.perf_counter(), 0.0
  total = config.total_steps
  meta = {"class_names": list(data.class_names), "pool_size": data.pool_size}
  bar = tqdm.tqdm(total=total, initial=start, disable=not is_main,
                  unit="step", dynamic_ncols=True, mininterval=2.0)
  preemption = runguard.Preemption().__enter__()
  try:
    for step in range(start + 1, total + 1):
      t0 = time.perf_counter()
      batch = runner.put_batch(next(train_iter))
      wait += time.perf_counter() - t0
      stage = next(r for f, r in reversed(stage_runners) if step - 1 >= f)
      state, m = stage.step(state, batch, rng)
      pending.append(m)
      bar.update(1)
      is_eval = step % config.eval_every == 0 or step == total
      is_ckpt = step % config.checkpoint.every == 0 or step == total
      if step % config.log_every == 0 or is_eval or is_ckpt:
        _check_finite(pending, step - len(pending), last_ckpt)
        mean = _mean_metrics(pending)
        writer.write(step, "train", mean)
        dt = time.perf_counter() - t_log
        writer.write(step, "perf", {
            "steps_per_sec": len(pending) / dt,
            "images_per_sec": len(pending) * config.data.batch_size / dt,
            "data_wait_fraction": wait / dt})
        bar.set_postfix(loss=f"{mean['loss']:.3f}", refresh=False)
        pending, t_log, wait = [], time.perf_counter(), 0.0
      best_value = do_eval(step, step == total) if is_eval else None
      if is_ckpt or best_value is not None:
        writer.sync()                 # the rows up to here, before the save
        ckpt.save(step, runner.host_state(state), train_iter.get_state(),
                  cfg_dict, meta=meta, last=is_ckpt, best_value=best_value)
        last_ckpt = step if is_ckpt else last_ckpt
      if preemption.requested(step) and step < total:
        if not is_ckpt:
          writer.sync()
          ckpt.save(step, runner.host_state(state), train_iter.get_state(),
                    cfg_dict, meta={**meta, "pending_metrics": [
                        {k: float(v) for k, v in m.items()}
                        for m in jax.device_get(pending)]})
        raise runguard.Preempted(
            f"SIGTERM: stopped after step {step} with a checkpoint there; "
            f"run the same command again to resume (exit status "
            f"{runguard.REQUEUE_EXIT})")
  finally:
    preemption.__exit__()
    bar.close()
    ckpt.close()
    writer.close()
  if start >= total and is_main:
    print(f"jaxfer: {workdir} already holds step {total}; nothing to do")
  return result
