r"""Command line: train and evaluate one config.

  python -m jaxfer.main --config default --workdir /tmp/jaxfer
  python -m jaxfer.main --config supervised_fer2013:smoke
  python -m jaxfer.main --config my_configs/exp.py:variant

`--config` takes a shipped config by name (`jaxfer.configs`, the
repository's configs/ folder) or any config file by path, optionally with
`:variant`; without it, `default`. Any config field can be overridden with
--config.<field>=<value>; a mistyped field is an error.
"""

import sys

from absl import flags

from jaxfer import configs
from jaxfer.core import cli
from jaxfer.core import xla_cpu
from jaxfer.loop import runguard
from jaxfer.loop import train


def _define_flags():
  cli.config_flag(
    str(configs.FOLDER / "default.py"),
    "A shipped config's name or a config file, optionally with ':variant'.",
  )
  cli.workdir_flag(
    "/tmp/jaxfer/default",
    "Where checkpoints, metrics and plots go; resumed if it holds checkpoints.",
  )


def main(argv):
  cli.start(argv)
  line = xla_cpu.configure([flags.FLAGS.config])
  if line:
    print(f"jaxfer: {line}", flush=True)
  try:
    train.run(flags.FLAGS.config, flags.FLAGS.workdir)
  except runguard.Preempted as e:
    print(f"jaxfer: {e}", file=sys.stderr)
    sys.exit(runguard.REQUEUE_EXIT)
  except (
    train.NonFiniteLoss,
    runguard.WorkdirBusy,
    ValueError,
    FileNotFoundError,
  ) as e:
    cli.fail("jaxfer", e)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
