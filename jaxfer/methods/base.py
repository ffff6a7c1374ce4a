"""What the training loop needs of a method: a bundle of pure functions."""

from collections.abc import Callable
import dataclasses


@dataclasses.dataclass(frozen=True)
class Method:
  """What the training loop needs of a method, as pure functions.

  Attributes:
    init: (rng, example images) -> state (a pytree of arrays with `.step`).
    step: (state, batch, rng) -> (state, metrics of scalars).
    eval_variables: state -> {model name: flax variables} to evaluate; the
      first name is the one checkpoints are selected by.
    apply: (variables, images) -> (logits, features) in eval mode.
    export: optional (state, workdir, class_names) -> None, called by the
      loop on process 0 after each evaluation, for what a method produces
      besides checkpoints (e.g. a distilled set).
    stages: optional ((first, step_fn), ...), ascending from first = 0:
      from the state's step `first` on, `step` equals `step_fn`, which the
      loop then runs instead. `step` itself must still choose by `state.step` (with
      `lax.cond`) so it stays the whole method for a caller; the loop
      avoids the cond because XLA CPU runs convolutions inside a
      conditional's branches many times slower (as inside `lax.scan`).

  Evaluated models named ``<group>/<i>`` (several networks of one protocol)
  are also summarised by the loop as ``<group>/mean`` and ``<group>/std``.
  """
  init: Callable
  step: Callable
  eval_variables: Callable
  apply: Callable
  export: Callable | None = None
  stages: tuple = ()
