"""What the training loop needs of a method: a bundle of pure functions."""

from collections.abc import Callable
import dataclasses


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
      first name is the one checkpoints are selected by.
    apply: (variables, images) -> (logits, features) in eval mode.
    export: optional (state, workdir, class_names) -> None, called by the
      loop on process 0 after each evaluation, for what a method produces
      besides checkpoints (e.g. a distilled set).

  Evaluated models named ``<group>/<i>`` (several networks of one protocol)
  are also summarised by the loop as ``<group>/mean`` and ``<group>/std``.
  """

  init: Callable
  stages: tuple
  eval_variables: Callable
  apply: Callable
  export: Callable | None = None

  def __post_init__(self):
    firsts = [first for first, _ in self.stages]
    if not firsts or firsts[0] != 0 or firsts != sorted(set(firsts)):
      raise ValueError(
        f"Method.stages must start at step 0 and ascend, got firsts {firsts}"
      )

  def step_at(self, step: int) -> Callable:
    """The step function of the phase that holds (0-based) state step
    `step`."""
    return next(fn for first, fn in reversed(self.stages) if step >= first)

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


def single(init, step, eval_variables, apply, export=None) -> Method:
  """A Method of one phase."""
  return Method(init, ((0, step),), eval_variables, apply, export)
