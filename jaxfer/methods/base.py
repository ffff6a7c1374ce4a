"""What the training loop needs of a method (a bundle of pure functions,
optax's `stateless` as the model) and the frame every network method
shares: its evaluated variables with the EMA, its learning rates logged."""

from collections.abc import Callable
import dataclasses

from jaxfer.models import net as net_lib


@dataclasses.dataclass(frozen=True)
class Run:
  """What a method's builder knows of its run besides the config: every
  builder is ``build(config, model, run) -> Method``.

  Attributes:
    total_steps: the run's steps (the schedules' length).
    axis_name: the mapped data axis under pmap/shard_map, else None.
    pool_size: the unlabeled pool's size (0: none or unknown); methods that
      keep per-face state (FlexMatch's buffer) need it.
    labeled_images: (n) -> float32 [classes * n, H, W, C], n labeled
      training images per class, class-major, in the evaluation view (the
      loop passes `jaxfer.data.build.per_class_images`; distillation's
      real start calls it in `init`), or None. A builder reads no data
      itself.
  """

  total_steps: int
  axis_name: str | None = None
  pool_size: int = 0
  labeled_images: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Method:
  """What the training loop needs of a method, as pure functions.

  Attributes:
    init: (rng, example images) -> state (a pytree of arrays with `.step`).
    stages: the method's phases, ((first, step_fn), ...) ascending from
      first = 0: from the state's step `first` on, the step is `step_fn`:
      (state, batch, rng) -> (state, metrics of scalars). Most methods have
      one phase; the loop jits each phase's step and runs the one of the
      current step (no `lax.cond`: XLA CPU runs convolutions inside a
      conditional's branches many times slower, as inside `lax.scan`).
    eval_variables: state -> {model name: flax variables} to evaluate; the
      first name is the one checkpoints are selected by. They run through
      the network's own eval forward (`jaxfer.models.eval_apply`), not a
      method's.
    export: optional (state, workdir, class_names) -> None, called by the
      loop on process 0 after each evaluation, for what a method produces
      besides checkpoints (e.g. a distilled set).

  Evaluated models named ``<group>/<i>`` (several networks of one protocol)
  are also summarised by the loop as ``<group>/mean`` and ``<group>/std``.
  """

  init: Callable
  stages: tuple
  eval_variables: Callable
  export: Callable | None = None

  def __post_init__(self):
    firsts = [first for first, _ in self.stages]
    if not firsts or firsts[0] != 0 or firsts != sorted(set(firsts)):
      raise ValueError(
        f"Method.stages must start at step 0 and ascend, got firsts {firsts}"
      )

  def phase_at(self, step: int) -> int:
    """The index in `stages` of the phase that holds (0-based) state step
    `step`: the loop runs that phase's step and ends a metrics row where
    the phase changes."""
    return max(i for i, (first, _) in enumerate(self.stages) if step >= first)

  def step_at(self, step: int) -> Callable:
    """The step function of the phase that holds (0-based) state step
    `step`."""
    return self.stages[self.phase_at(step)][1]

  @property
  def step(self) -> Callable:
    """The step of a one-phase method (callers that step by hand); a
    method with several phases needs `step_at`."""
    if len(self.stages) != 1:
      raise ValueError(
        f"this method has {len(self.stages)} phases "
        f"(from steps {[f for f, _ in self.stages]}): "
        "use Method.step_at(step)"
      )
    return self.stages[0][1]


def single(init, step, eval_variables, export=None) -> Method:
  """A Method of one phase."""
  return Method(init, ((0, step),), eval_variables, export)


def evaluated(net: net_lib.Net, name: str, ema_name: str, *, ema_first=False):
  """{name: the live variables, ema_name: the EMA's (if `net` keeps
  one)}, the EMA first when `ema_first` (checkpoints are chosen by the
  first)."""
  live = {name: net_lib.variables(net.params, net.batch_stats)}
  if net.ema is None:
    return live
  ema = {ema_name: net_lib.variables(**net.ema)}
  return {**ema, **live} if ema_first else {**live, **ema}


def with_lrs(step: Callable, **schedules: Callable) -> Callable:
  """`step` whose metrics also hold each schedule's value at the step it
  takes (the state's step before the update): `lr=schedule`."""

  def stepped(state, batch, rng):
    at = state.step
    new, metrics = step(state, batch, rng)
    return new, {**metrics, **{k: s(at) for k, s in schedules.items()}}

  return stepped
