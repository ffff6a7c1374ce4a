r"""Command line: mine confident faces from a pool with a primitive model.

  python -m jaxfer.select --config configs/omni_fer2013.py \
      --config.select.model_workdir=/tmp/jaxfer/primitive \
      --workdir /tmp/jaxfer/mined

Scores every face of `config.select.pool` with the primitive model (a
jaxfer.main workdir), keeps those the rule of `config.select` accepts, and
writes the mined set to <workdir>/mined (train on it with
--config.data.mined.path=<workdir>/mined). A killed pass resumes where it
stopped. Any config field can be overridden with --config.<field>=<value>.
"""

from absl import flags

from jaxfer.core import cli
from jaxfer.data.base import DataError
from jaxfer.loop import mine


def _define_flags():
  cli.config_flag(None, "A config (name or file) with a `select` section.")
  cli.workdir_flag(
    None, "Where the score tables and the mined set go; a pass there resumes."
  )


def main(argv):
  cli.start(
    argv,
    "usage: python -m jaxfer.select --config NAME|FILE --workdir DIR",
    "config",
    "workdir",
  )
  try:
    mine.run(flags.FLAGS.config, flags.FLAGS.workdir)
  except (DataError, ValueError, FileNotFoundError) as e:
    cli.fail("jaxfer.select", e)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
