"""The preamble every entry point shares (`python -m jaxfer.<command>`).

An entry point defines its flags only when it runs as a program (importing
it must not add global flags: two entry points in one process would both
define --workdir), with `config_flag` / `workdir_flag` here; its `main`
starts with `start(argv)`; it runs with `run(main)`, which resolves
`--config NAME[:VARIANT]` to the shipped config's file; `fail` ends it
with one line naming the command.
"""

import pathlib
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


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where a `--config.<field>=...` naming no field of
  the config is one line naming the argument (ml_collections raises a
  KeyError inside the parse, which absl would print as a traceback)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    why = e.args[0] if e.args else e
    while isinstance(why, BaseException) and why.args:
      why = why.args[0]
    why = str(why).replace("\n", "; ")
    field = why.split("'")[1] if why.count("'") >= 2 else ""
    given = [a for a in argv[1:] if a.startswith("--config.")]
    bad = [a for a in given if field and field in a.split("=")[0]] or given
    path = pathlib.Path(argv[0])
    prog = "jaxfer." + (
      path.parent.name if path.stem == "__main__" else path.stem
    )
    raise SystemExit(
      f"{prog}: error: {', '.join(bad)}: the config has no such field ({why})"
    ) from None


def run(main, **kw) -> None:
  """`absl.app.run(main)` with `--config NAME` resolved to its file and a
  mistyped `--config.<field>` one line (`parse_flags`)."""
  from jaxfer import configs  # pylint: disable=g-import-not-at-top

  kw.setdefault("flags_parser", parse_flags)
  app.run(main, argv=configs.argv(sys.argv), **kw)
