r"""Benchmarks that print figures measured side by side in one run.

  python -m jaxfer.bench {train,parallel,meta,distill} --config FILE \
      [--config.field=value ...] [--steps N] [--out FILE.json]

* `train` (`bench/train.py`): images/s of the input pipeline against the
  jitted training step on batches of the same shape.
* `parallel` (`bench/parallel.py`): the step on 1, 2 and 4 forced CPU
  devices, and the state after 3 steps on 4 devices (mesh, pmap,
  shard_map) against 1 device.
* `meta` (`bench/meta.py`): the Meta-Face2Exp feedbacks against the
  supervised step, time and XLA memory.
* `distill` (`bench/distill.py`): one distillation outer step for T inner
  steps against T plain steps.

`measure` holds what they share: compiling a step, reading its XLA memory,
timing rows in turn. The docs' Benchmarks figures and their commands
come from these.
"""
