r"""Command line: train and evaluate one config.

  python -m jaxfer.main --config configs/default.py --workdir /tmp/jaxfer
  python -m jaxfer.main --config configs/supervised_fer2013.py:smoke \
      --config.data.path=../shared/data/fer2013/fer2013.csv.bz2

Without --config it runs configs/default.py. Any config field can be
overridden with --config.<field>=<value>; a mistyped field is an error.
"""

import pathlib
import sys

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

from jaxfer.loop import runguard
from jaxfer.loop import train
from jaxfer.core import xla_cpu

_DEFAULT = pathlib.Path(__file__).resolve().parent.parent / "configs"


def _define_flags():
  """The CLI's flags, defined only when run as a program (importing the
  module must not add global flags: two entry points in one process
  would both define --workdir)."""
  config_flags.DEFINE_config_file(
      "config", str(_DEFAULT / "default.py"),
      "Config file, optionally with ':variant'.", lock_config=True)
  flags.DEFINE_string("workdir", "/tmp/jaxfer/default",
                      "Where checkpoints, metrics and plots go; resumed if it "
                      "holds checkpoints.")


def main(argv):
  if not flags.FLAGS["verbosity"].present:   # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  line = xla_cpu.configure([flags.FLAGS.config])
  if line:
    print(f"jaxfer: {line}", flush=True)
  try:
    train.run(flags.FLAGS.config, flags.FLAGS.workdir)
  except runguard.Preempted as e:
    print(f"jaxfer: {e}", file=sys.stderr)
    sys.exit(runguard.REQUEUE_EXIT)
  except (train.NonFiniteLoss, runguard.WorkdirBusy, ValueError,
          FileNotFoundError) as e:
    print(f"jaxfer: error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
