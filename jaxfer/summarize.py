r"""Mean +- std over runs (seeds) of the last evaluation of each workdir.

  python -m jaxfer.summarize --split PrivateTest --model model \
      /tmp/jaxfer/sup10_s0 /tmp/jaxfer/sup10_s1 /tmp/jaxfer/sup10_s2

Reads each workdir's `metrics.jsonl`, takes the row of the last step on
`--split` for `--model`, and prints every metric as mean +- sample std (n
runs), the form of the docs' seed tables. `--json` prints the numbers.
"""

import argparse
import json
import pathlib
import statistics
import sys

from jaxfer.core import report


def last_eval(workdir, split: str, model: str) -> dict:
  """The evaluation row of the last step of `workdir` on split/model."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  rows = [
    r
    for r in report.read_rows(workdir)
    if r.get("split") == split and r.get("model") == model
  ]
  if not rows:
    raise ValueError(
      f"{path}: no evaluation of model {model!r} on split {split!r}"
    )
  return max(rows, key=lambda r: r["step"])


def summarize(workdirs, split: str, model: str, metrics) -> dict:
  """{metric: (mean, sample std, n)} over the workdirs' last evaluations."""
  rows = [last_eval(w, split, model) for w in workdirs]
  out = {}
  for m in metrics:
    values = [r[m] for r in rows]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    out[m] = (statistics.fmean(values), std, len(values))
  out["steps"] = sorted({r["step"] for r in rows})
  return out


def main(argv=None):
  # argparse, not absl flags: importing this module defines no global flag.
  parser = argparse.ArgumentParser(
    prog="python -m jaxfer.summarize", description=__doc__.split("\n\n")[0]
  )
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--split", default="PrivateTest")
  parser.add_argument(
    "--model",
    default="model",
    help="evaluated model name (e.g. student, teacher)",
  )
  parser.add_argument(
    "--metrics",
    default="accuracy,mean_class_accuracy,macro_f1",
    help="comma-separated metric names",
  )
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args(argv)
  out = summarize(
    args.workdirs, args.split, args.model, args.metrics.split(",")
  )
  if args.json:
    json.dump(out, sys.stdout)
    print()
    return
  print(
    ", ".join(
      f"{m} {v[0]:.4f} +- {v[1]:.4f}" for m, v in out.items() if m != "steps"
    )
    + f" (n = {len(args.workdirs)}, step {out['steps']})"
  )


if __name__ == "__main__":
  main()
