"""The preamble every entry point shares (`python -m jaxfer.<command>`).

An entry point defines its flags only when it runs as a program (importing
it must not add global flags: two entry points in one process would both
define --workdir), with `config_flag` / `workdir_flag` here; its `main`
starts with `start(argv)`; it runs with `run(main)`, which resolves
`--config NAME[:VARIANT]` to the shipped config's file; `fail` ends it
with one line naming the command.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags


def config_flag(default: str | None, help_text: str) -> None:
  """`--config`: a shipped config's name or a config file, `:variant`."""
  config_flags.DEFINE_config_file(
    "config", default, help_text, lock_config=True
  )


def workdir_flag(default: str | None, help_text: str) -> None:
  flags.DEFINE_string("workdir", default, help_text)


def start(argv: list[str], usage: str = "", *required: str) -> None:
  """Quiets Orbax's and JAX's INFO lines (unless --verbosity was given)
  and stops with `usage` on stray arguments or a `required` flag unset."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if any(flags.FLAGS[f].value in (None, "") for f in required):
    raise app.UsageError(usage)


def fail(command: str, error: Exception, status: int = 1):
  """Ends the command with `<command>: error: <error>` and `status`."""
  print(f"{command}: error: {error}", file=sys.stderr)
  sys.exit(status)


def run(main, **kw) -> None:
  """`absl.app.run(main)` with `--config NAME` resolved to its file."""
  from jaxfer import configs  # pylint: disable=g-import-not-at-top

  app.run(main, argv=configs.argv(sys.argv), **kw)
