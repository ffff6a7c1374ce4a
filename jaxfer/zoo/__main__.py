r"""Writes a shipped model from a workdir: weights, card and digests.

  python -m jaxfer.zoo --workdir /tmp/runs/vgg_s1 --model ema \
      --name fer2013_vgg --splits PublicTest,PrivateTest

Evaluates the chosen model (`--model`: one of the workdir's evaluated
models) on each split, with and without mirrored test-time augmentation,
writes `<name>.msgpack` and `<name>.json` into `--folder` (default: this
package) and prints the SHA-256 lines to paste into `jaxfer.zoo.SHA256`.
The card's command and code version are those the workdir recorded when
its run started (`started.json`, `jaxfer.core.provenance`).
"""

import json

from absl import app
from absl import flags
from absl import logging

from jaxfer import zoo
from jaxfer.loop import evaluation


def _define_flags():
  """Defined only when run as a program (importing adds no global flags)."""
  flags.DEFINE_string("workdir", None, "The trained workdir.", required=True)
  flags.DEFINE_string("model", "model", "Which evaluated model to ship.")
  flags.DEFINE_string("name", zoo.DEFAULT, "The shipped model's name.")
  flags.DEFINE_string("folder", str(zoo.HERE), "Where to write the files.")
  flags.DEFINE_list(
    "splits",
    ["PublicTest", "PrivateTest"],
    "Splits to measure (the card's metrics).",
  )
  flags.DEFINE_string("data_path", "", "The dataset file, if not the config's.")


def measure(clf, splits, data_path: str = "") -> dict:
  """{split: {"plain" | "flip": metrics and per-class recall}}."""
  cfg = clf.config.data
  if data_path:
    cfg = cfg.copy_and_resolve_references()
    cfg.path = data_path
  out = {}
  for split in splits:
    for flip in (False, True):
      r = evaluation.evaluate_split(
        clf.apply,
        clf.variables,
        clf.class_names,
        cfg,
        split,
        flip=flip,
        warmup=True,
      )
      ((m, cm),) = r.results.values()
      out.setdefault(split, {})["flip" if flip else "plain"] = {
        **{k: round(float(v), 5) for k, v in m.items()},
        "recall": {
          c: round(v["recall"], 4)
          for c, v in evaluation.per_class(cm, clf.class_names).items()
        },
        "faces_per_s": round(len(r.source) / r.seconds, 1),
      }
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  clf = zoo.load(f.workdir, model=f.model)
  metrics = measure(clf, f.splits, f.data_path)
  print(json.dumps(metrics, indent=1))
  digests = zoo.write(
    f.workdir,
    f.name,
    model=f.model,
    folder=f.folder,
    metrics=metrics,
  )
  print("SHA256 = {")
  for name, digest in digests.items():
    print(f'    "{name}":\n        "{digest}",')
  print("}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
