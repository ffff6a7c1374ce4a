"""The one training loop. It does not know which method it runs.

`run(config, workdir)` serves the CLI, the tests and the notebooks. It reads
in four parts: `_setup` builds the data, the model, the method's pure
functions and one data-parallel runner per phase of the method
(`jaxfer/core/parallel.py`: one jit over a device mesh, or pmap);
`_restore_or_init` resumes a workdir that holds checkpoints (data iterator
included) or starts fresh (with `config.init_from`'s weights); `_steps` is
the loop body: step, log, evaluate (`jaxfer/loop/evaluation.py`, shared
with `python -m jaxfer.evaluate`), checkpoint, stop on SIGTERM. Only process
0 writes metrics and shows progress; Orbax writes checkpoints once.
"""

import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import tqdm

from jaxfer import methods
from jaxfer import models
from jaxfer.core import parallel
from jaxfer.core import provenance
from jaxfer.core import report
from jaxfer.data import build as data_build
from jaxfer.loop import checkpoint as ckpt_lib
from jaxfer.loop import evaluation
from jaxfer.loop import pretrained
from jaxfer.loop import runguard


class NonFiniteLoss(RuntimeError):
  """The loss became NaN or infinite; the run stopped."""


def _global(local: dict, sharding) -> dict:
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
    for k, v in local.items()
  }


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
      "the learning rate, or check the data)"
    )


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
      "resume: the docs, 'What survives what')."
    )


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates `config`, writing to `workdir`.

  Returns:
    The last evaluation: {"<split>/<model>/<metric>": value}.
  """
  parallel.maybe_initialize(config.distributed)
  workdir = pathlib.Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  # One run per workdir: process 0 (the writer) holds its lock.
  lock = runguard.WorkdirLock(workdir) if jax.process_index() == 0 else None
  try:
    return _train(config, workdir)
  finally:
    if lock is not None:
      lock.release()


@dataclasses.dataclass
class _Run:
  """What `_setup` builds and the loop body reads."""

  data: data_build.Data
  method: methods.Method
  runners: list  # [(first step, runner)] per phase
  rng: jax.Array  # the run's base key of the steps
  evaluator: evaluation.Evaluator
  ckpt: ckpt_lib.Checkpointer
  writer: report.Writer
  cfg_dict: dict  # the config as saved with checkpoints
  meta: dict  # saved with checkpoints


def _setup(config, workdir: pathlib.Path, is_main: bool):
  """(the run's parts, the initial state): data, model, method, runners."""
  mesh = parallel.make_mesh()
  for field in ("batch_size", "eval_batch_size"):
    parallel.check_divisible(
      f"config.data.{field}", config.data[field], mesh.devices.size, "devices"
    )
  repl, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
  data = data_build.build(
    config, process_index=jax.process_index(), process_count=jax.process_count()
  )
  # pmap needs the mapped axis inside BatchNorm and the step's means; the
  # mesh path does not (jit partitions the global batch itself).
  axis = parallel.PMAP_AXIS if config.parallel.mode == "pmap" else None
  model = models.build(config.model, config.data.num_classes, bn_axis_name=axis)
  method = methods.build(
    config, model, config.total_steps, axis_name=axis, pool_size=data.pool_size
  )
  runners = [
    (first, parallel.make_runner(config.parallel.mode, fn, mesh))
    for first, fn in method.stages
  ]
  init_rng, rng = jax.random.split(jax.random.key(config.seed))
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init, out_shardings=repl)(
    init_rng, jnp.zeros((1, size, size, ch))
  )
  sel = config.checkpoint
  evaluator = evaluation.Evaluator(
    apply=models.eval_apply(model),
    data=data,
    to_global=lambda b: _global(b, sharded),
    writer=None,
    workdir=workdir,
    num_classes=config.data.num_classes,
    eval_batch_size=config.data.eval_batch_size,
    best_split=sel.best_split,
    best_metric=sel.best_metric,
    confusion_every_eval=config.confusion_every_eval,
    is_main=is_main,
    out_sharding=repl,
  )
  run = _Run(
    data=data,
    method=method,
    runners=runners,
    rng=rng,
    evaluator=evaluator,
    ckpt=ckpt_lib.Checkpointer(workdir, keep=sel.keep),
    writer=None,
    cfg_dict=json.loads(config.to_json_best_effort()),
    meta={"class_names": list(data.class_names), "pool_size": data.pool_size},
  )
  return run, state, repl


def _restore_or_init(
  config, workdir, run: _Run, state, train_iter, repl, is_main: bool
):
  """(state, first step, pending metrics): the workdir's latest checkpoint
  (the data iterator restored too), or a fresh state with
  `config.init_from`'s weights."""
  old_cfg = run.ckpt.latest_config()
  if old_cfg is not None:
    _check_same_config(workdir, old_cfg, run.cfg_dict)
  restored = run.ckpt.restore(state)
  if restored is None:
    state, notes = pretrained.load_into(config, state)
    for line in notes if is_main else ():
      print(f"jaxfer: init_from: {line}", flush=True)
    return jax.device_put(state, repl), 0, []
  state, data_state, _, old_meta = restored
  train_iter.set_state(data_state)
  start = int(state.step)
  # Metrics of the steps since the last log row (a preempted run's).
  pending = [
    {k: np.float32(v) for k, v in m.items()}
    for m in old_meta.get("pending_metrics", [])
  ]
  if is_main:
    print(f"jaxfer: resumed from step {start}", flush=True)
  return state, start, pending


def _train(config, workdir: pathlib.Path) -> dict:
  is_main = jax.process_index() == 0
  if is_main:
    print(f"jaxfer: writing to {workdir}", flush=True)
  run, state, repl = _setup(config, workdir, is_main)
  train_iter = iter(run.data.train)
  state, start, pending = _restore_or_init(
    config, workdir, run, state, train_iter, repl, is_main
  )
  if is_main:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    if start == 0 and not (workdir / provenance.FILE).exists():
      provenance.record(workdir)  # a fresh run: its command and code
  run.writer = run.evaluator.writer = report.Writer(workdir, resume_step=start)
  run.writer.text("data", "\n\n".join(run.data.log))
  if is_main:
    print("\n".join(f"  {line}" for line in run.data.log), flush=True)
  try:
    _steps(config, run, state, train_iter, start, pending, is_main)
  finally:
    run.ckpt.close()
    run.writer.close()
  if start >= config.total_steps and is_main:
    print(
      f"jaxfer: {workdir} already holds step {config.total_steps}; "
      "nothing to do"
    )
  return run.evaluator.result


def _steps(
  config, run: _Run, state, train_iter, start: int, pending: list, is_main: bool
) -> None:
  """The loop body, from step `start + 1` to `config.total_steps`."""
  runner = run.runners[0][1]
  state = runner.put_state(state)
  last_ckpt = start or None
  t_log, wait = time.perf_counter(), 0.0
  total = config.total_steps
  bar = tqdm.tqdm(
    total=total,
    initial=start,
    disable=not is_main,
    unit="step",
    dynamic_ncols=True,
    mininterval=2.0,
  )

  def save(step, **kw):
    run.writer.sync()  # the rows up to here, before the save
    run.ckpt.save(
      step, runner.host_state(state), train_iter.get_state(), run.cfg_dict, **kw
    )

  preemption = runguard.Preemption().__enter__()
  try:
    for step in range(start + 1, total + 1):
      t0 = time.perf_counter()
      batch = runner.put_batch(next(train_iter))
      wait += time.perf_counter() - t0
      stage = next(r for f, r in reversed(run.runners) if step - 1 >= f)
      state, m = stage.step(state, batch, run.rng)
      pending.append(m)
      bar.update(1)
      is_eval = step % config.eval_every == 0 or step == total
      is_ckpt = step % config.checkpoint.every == 0 or step == total
      if step % config.log_every == 0 or is_eval or is_ckpt:
        _check_finite(pending, step - len(pending), last_ckpt)
        mean = _mean_metrics(pending)
        run.writer.write(step, "train", mean)
        dt = time.perf_counter() - t_log
        run.writer.write(
          step,
          "perf",
          {
            "steps_per_sec": len(pending) / dt,
            "images_per_sec": len(pending) * config.data.batch_size / dt,
            "data_wait_fraction": wait / dt,
          },
        )
        bar.set_postfix(loss=f"{mean['loss']:.3f}", refresh=False)
        pending, t_log, wait = [], time.perf_counter(), 0.0
      best_value = None
      if is_eval:
        host = runner.host_state(state)
        best_value = run.evaluator(
          run.method.eval_variables(host), step, step == total
        )
        if is_main and run.method.export is not None:
          run.method.export(host, run.evaluator.workdir, run.data.class_names)
      if is_ckpt or best_value is not None:
        save(step, meta=run.meta, last=is_ckpt, best_value=best_value)
        last_ckpt = step if is_ckpt else last_ckpt
      if preemption.requested(step) and step < total:
        if not is_ckpt:
          save(
            step,
            meta={
              **run.meta,
              "pending_metrics": [
                {k: float(v) for k, v in m.items()}
                for m in jax.device_get(pending)
              ],
            },
          )
        raise runguard.Preempted(
          f"SIGTERM: stopped after step {step} with a checkpoint there; "
          f"run the same command again to resume (exit status "
          f"{runguard.REQUEUE_EXIT})"
        )
  finally:
    preemption.__exit__()
    bar.close()
