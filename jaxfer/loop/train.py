"""The one training loop. It does not know which method it runs.

`run(config, workdir)` serves the CLI, the tests and the notebooks. It reads
in four parts: `_setup` builds the data, the model, the method's pure
functions and one data-parallel runner per phase of the method
(`jaxfer/core/parallel.py`: one jit over a device mesh, or pmap);
`_restore_or_init` resumes a workdir that holds checkpoints (data iterator
included) or starts fresh (with `config.init_from`'s weights); `_steps` is
the loop body: step, log, evaluate (`jaxfer/loop/evaluation.py`, shared
with `python -m jaxfer.evaluate`; `jaxfer/loop/reporter.py` writes what it
computed), checkpoint, stop on SIGTERM. Only process
0 writes metrics and shows progress; Orbax writes checkpoints once.
"""

import dataclasses
import functools
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
from jaxfer.loop import reporter as reporter_lib
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


@dataclasses.dataclass(frozen=True)
class _Run:
  """What `_setup` builds and the loop body reads."""

  data: data_build.Data
  method: methods.Method
  runners: list  # one runner per phase of `method.stages`
  rng: jax.Array  # the run's base key of the steps
  evaluator: evaluation.Evaluator
  ckpt: ckpt_lib.Checkpointer
  cfg_dict: dict  # the config as saved with checkpoints
  meta: dict  # saved with checkpoints


def _setup(config, workdir: pathlib.Path):
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
    config,
    model,
    config.total_steps,
    axis_name=axis,
    pool_size=data.pool_size,
    labeled_images=functools.partial(data_build.per_class_images, config.data),
  )
  init_rng, rng = jax.random.split(jax.random.key(config.seed))
  size, ch = config.data.image_size, config.data.channels
  state = jax.jit(method.init, out_shardings=repl)(
    init_rng, jnp.zeros((1, size, size, ch))
  )
  sel = config.checkpoint
  run = _Run(
    data=data,
    method=method,
    runners=[
      parallel.make_runner(config.parallel.mode, fn, mesh)
      for _, fn in method.stages
    ],
    rng=rng,
    evaluator=evaluation.Evaluator(
      apply=models.eval_apply(model),
      data=data,
      to_global=lambda b: _global(b, sharded),
      num_classes=config.data.num_classes,
      eval_batch_size=config.data.eval_batch_size,
      best_split=sel.best_split,
      best_metric=sel.best_metric,
      out_sharding=repl,
    ),
    ckpt=ckpt_lib.Checkpointer(workdir, keep=sel.keep),
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
  run, state, repl = _setup(config, workdir)
  train_iter = iter(run.data.train)
  state, start, pending = _restore_or_init(
    config, workdir, run, state, train_iter, repl, is_main
  )
  if is_main:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    if start == 0 and not (workdir / provenance.FILE).exists():
      provenance.record(workdir)  # a fresh run: its command and code
  reporter = reporter_lib.Reporter(
    writer=report.Writer(workdir, resume_step=start),
    workdir=workdir,
    class_names=tuple(run.data.class_names),
    confusion_every_eval=config.confusion_every_eval,
    is_main=is_main,
  )
  reporter.text("data", "\n\n".join(run.data.log))
  if is_main:
    print("\n".join(f"  {line}" for line in run.data.log), flush=True)
  try:
    last = _steps(config, run, reporter, state, train_iter, start, pending)
  finally:
    run.ckpt.close()
    reporter.close()
  if start >= config.total_steps and is_main:
    print(
      f"jaxfer: {workdir} already holds step {config.total_steps}; "
      "nothing to do"
    )
  return {} if last is None else last.flat()


@dataclasses.dataclass
class _Window:
  """The metrics of the steps since the last training row, and the time
  they took (of it, `wait` for data)."""

  pending: list
  start: float = dataclasses.field(default_factory=time.perf_counter)
  wait: float = 0.0

  def perf(self, batch_size: int) -> dict:
    dt, n = time.perf_counter() - self.start, len(self.pending)
    return {
      "steps_per_sec": n / dt,
      "images_per_sec": n * batch_size / dt,
      "data_wait_fraction": self.wait / dt,
    }


def _steps(
  config, run: _Run, reporter, state, train_iter, start: int, pending: list
):
  """The loop body, from step `start + 1` to `config.total_steps`; returns
  the last `Evaluation` (None when no step ran)."""
  method, total = run.method, config.total_steps
  runner = run.runners[method.phase_at(start)]
  state = runner.put_state(state)
  last_ckpt, last_eval = start or None, None
  window = _Window(pending)
  bar = tqdm.tqdm(
    total=total,
    initial=start,
    disable=not reporter.is_main,
    unit="step",
    dynamic_ncols=True,
    mininterval=2.0,
  )

  def row(step):  # the training row of the steps up to `step`
    nonlocal window
    _check_finite(window.pending, step - len(window.pending), last_ckpt)
    mean = _mean_metrics(window.pending)
    reporter.train(step, mean, window.perf(config.data.batch_size))
    bar.set_postfix(loss=f"{mean['loss']:.3f}", refresh=False)
    window = _Window([])

  def save(step, **kw):
    reporter.sync()  # the rows up to here, before the save
    run.ckpt.save(
      step, runner.host_state(state), train_iter.get_state(), run.cfg_dict, **kw
    )

  with runguard.Preemption() as preemption, bar:
    for step in range(start + 1, total + 1):
      phase = method.phase_at(step - 1)
      if window.pending and step > 1 and phase != method.phase_at(step - 2):
        row(step - 1)  # a phase's row holds its own metrics only
      runner = run.runners[phase]
      t0 = time.perf_counter()
      batch = runner.put_batch(next(train_iter))
      window.wait += time.perf_counter() - t0
      state, m = runner.step(state, batch, run.rng)
      window.pending.append(m)
      bar.update(1)
      is_eval = step % config.eval_every == 0 or step == total
      is_ckpt = step % config.checkpoint.every == 0 or step == total
      if step % config.log_every == 0 or is_eval or is_ckpt:
        row(step)
      best_value = None
      if is_eval:
        host = runner.host_state(state)
        last_eval = run.evaluator(method.eval_variables(host), step)
        reporter.evaluation(last_eval, final=step == total)
        best_value = last_eval.selection
        if reporter.is_main and method.export is not None:
          method.export(host, reporter.workdir, run.data.class_names)
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
                for m in jax.device_get(window.pending)
              ],
            },
          )
        raise runguard.Preempted(
          f"SIGTERM: stopped after step {step} with a checkpoint there; "
          f"run the same command again to resume (exit status "
          f"{runguard.REQUEUE_EXIT})"
        )
  return last_eval
