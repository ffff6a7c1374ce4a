r"""Command line: mine confident faces from a pool with a primitive model.

  python -m jaxfer.select --config configs/omni_fer2013.py \
      --config.select.model_workdir=/tmp/jaxfer/primitive \
      --config.select.pool.path=../shared/data/lfw --workdir /tmp/jaxfer/mined

Scores every face of `config.select.pool` with the primitive model (a
jaxfer.main workdir), keeps those the rule of `config.select` accepts, and
writes the mined set to <workdir>/mined (train on it with
--config.data.mined.path=<workdir>/mined). A killed pass resumes where it
stopped. Any config field can be overridden with --config.<field>=<value>.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxfer import configs
from jaxfer.data.base import DataError
from jaxfer.loop import mine


def _define_flags():
  """The CLI's flags, defined only when run as a program (importing the
  module for `run` must not add global flags)."""
  config_flags.DEFINE_config_file(
    "config", None, "Config file with a `select` section.", lock_config=True
  )
  flags.DEFINE_string(
    "workdir",
    None,
    "Where the score tables and the mined set go; a pass there is resumed.",
  )


def main(argv):
  if not flags.FLAGS["verbosity"].present:  # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if flags.FLAGS.config is None or not flags.FLAGS.workdir:
    raise app.UsageError(
      "usage: python -m jaxfer.select --config FILE --workdir DIR"
    )
  try:
    mine.run(flags.FLAGS.config, flags.FLAGS.workdir)
  except (DataError, ValueError, FileNotFoundError) as e:
    print(f"jaxfer.select: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  _define_flags()
  app.run(main, argv=configs.argv(sys.argv))
