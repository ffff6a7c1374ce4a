r"""Evaluates the shipped model, or a trained workdir's models, on any
dataset and split.

  python -m jaxfer.evaluate --split PrivateTest
  python -m jaxfer.evaluate --workdir /tmp/jaxfer/f2e --split PrivateTest
  python -m jaxfer.evaluate --workdir /tmp/jaxfer/f2e --split test \
      --config.data.source=image_folder --config.data.path=~/faces/rafdb
  # An ensemble (mean class probabilities), written out as a teacher:
  python -m jaxfer.evaluate --workdir /tmp/jaxfer/a,/tmp/jaxfer/b \
      --model ema --split Training --probabilities_out /tmp/teacher.npz

With no `--workdir`, the model shipped in the package (`jaxfer.zoo`) and
its training config; with one, its best checkpoint (`--nobest`: the
latest) and the config saved with it; with several, comma-separated, the
ensemble of their `--model` (default: each one's first model), whose
class probabilities are averaged, read with the first one's config (all
must share classes and input). `--probabilities_out` writes the class
probabilities of every row with its id (`jaxfer.data.teacher`: soft
targets for distillation, `config.data.teacher.path`);
`--config.<field>=<value>` overrides that config (the data fields say what
to read: any source of `jaxfer.data.build.make_source`). Labels are mapped
to the model's classes by name (`jaxfer.data.labels.label_map`, explicit
synonyms: "happiness" is "happy"); a class with no counterpart is an error
that lists it, unless `--drop_unmapped` leaves its rows out (counted).
Prints and writes to `metrics.json` (per model: accuracy, mean class
accuracy, macro-F1 with 95% bootstrap intervals over the rows (1,000
resamples, `jaxfer.core.metrics.bootstrap`), loss, per-class recall and
support; on FER2013's PublicTest and PrivateTest the same figures again
with the faces whose pixels equal a Training face's left out, counted in
`also_in_training`) and one confusion-matrix PNG per model
to `--out` (default `<workdir>/evaluate/<source>_<split>`, or
`jaxfer_evaluate/<model>/<source>_<split>` for the shipped one), with the loop's
own evaluation code (`jaxfer.loop.evaluation`).
"""

import json
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jaxfer import zoo
from jaxfer.core import cli
from jaxfer.core import defaults
from jaxfer.core import metrics as metrics_lib
from jaxfer.core import report
from jaxfer.data import base
from jaxfer.data import build
from jaxfer.data import dedup
from jaxfer.data import teacher
from jaxfer.loop import checkpoint as ckpt_lib
from jaxfer.loop import evaluation


def _define_flags():
  cli.workdir_flag(
    "",
    "A workdir written by jaxfer.main, or several, comma-separated: "
    "their ensemble (default: the model shipped with jaxfer).",
  )
  flags.DEFINE_bool("best", True, "The best checkpoint, else the latest.")
  flags.DEFINE_string(
    "split",
    "",
    "The split to read (default: the config's first evaluation split).",
  )
  flags.DEFINE_string(
    "model",
    "",
    "One evaluated model (default: all of them, e.g. student and teacher).",
  )
  flags.DEFINE_bool(
    "drop_unmapped",
    False,
    "Leave out rows whose class has no "
    "counterpart among the model's classes (else an error).",
  )
  flags.DEFINE_string(
    "out", "", "Output folder (default: <workdir>/evaluate/<source>_<split>)."
  )
  flags.DEFINE_bool(
    "flip",
    False,
    "Test-time augmentation: average the class "
    "probabilities of each face and its mirror (two "
    "forwards a face).",
  )
  flags.DEFINE_string(
    "probabilities_out",
    "",
    "Write the class probabilities of every row of the split and its id "
    "to this .npz (a teacher for config.data.teacher.path).",
  )


def _workdir_arg(argv: list[str]) -> str | None:
  for i, a in enumerate(argv):
    if a.startswith("--workdir="):
      return a.split("=", 1)[1].split(",")[0]
    if a == "--workdir" and i + 1 < len(argv):
      return argv[i + 1].split(",")[0]
  return None


INPUT_FIELDS = ("image_size", "channels", "mean", "std")


def _members(workdirs: list[str], best: bool, model: str) -> list:
  """The ensemble's zoo.Models, each one's `model`; they must share classes
  and input."""
  members = [zoo.load(w, best=best).select(model) for w in workdirs]
  first = members[0]
  for m in members[1:]:
    if m.class_names != first.class_names:
      raise ValueError(
        f"{m.name}: classes {m.class_names} are not {first.name}'s "
        f"{first.class_names}: no ensemble"
      )
    for f in INPUT_FIELDS:
      if m.config.data[f] != first.config.data[f]:
        raise ValueError(
          f"{m.name}: config.data.{f}={m.config.data[f]} is not "
          f"{first.name}'s {first.config.data[f]}: no ensemble"
        )
  return members


def run(
  workdir: str,
  config,
  *,
  split: str = "",
  model: str = "",
  best: bool = True,
  drop_unmapped: bool = False,
  out: str = "",
  flip: bool = False,
  probabilities_out: str = "",
):
  """Evaluates a workdir's models (or, with no workdir, the shipped model;
  with several, comma-separated, their ensemble); returns {model: metrics}
  and writes them (see module)."""
  workdirs = [w for w in workdir.split(",") if w]
  cfg = config.data
  split = split or cfg.eval_splits[0]
  summary = {"workdir": workdir}
  if len(workdirs) > 1 or probabilities_out:
    members = _members(workdirs or [""], best, model)
    names = members[0].class_names
    r = evaluation.ensemble_split(
      [(m.apply, next(iter(m.variables.values()))) for m in members],
      names,
      cfg,
      split,
      flip=flip,
      drop_unmapped=drop_unmapped,
    )
    label = [f"{m.name}:{next(iter(m.variables))}" for m in members]
    name = "ensemble" if len(members) > 1 else next(iter(members[0].variables))
    results = {name: (r.metrics, r.confusion)}
    predictions = {name: (r.labels, r.probabilities.argmax(-1))}
    summary["members"] = label
    folder = "ensemble" if len(members) > 1 else ""
  else:
    members = [zoo.load(workdir, best=best, model=model)]
    names = members[0].class_names
    r = evaluation.evaluate_split(
      members[0].apply,
      members[0].variables,
      names,
      cfg,
      split,
      flip=flip,
      drop_unmapped=drop_unmapped,
    )
    results, predictions, folder = r.results, r.predictions, ""
  where = (
    pathlib.Path(workdirs[0]) / "evaluate" / folder
    if workdirs
    else pathlib.Path("jaxfer_evaluate") / members[0].name
  )
  out = pathlib.Path(
    out or where / f"{cfg.source}_{split}{'_flip' if flip else ''}"
  )
  out.mkdir(parents=True, exist_ok=True)
  summary.update(
    model=members[0].name if len(members) == 1 else "ensemble",
    source=cfg.source,
    path=cfg.path,
    split=split,
    examples=len(r.source),
    dropped_unmapped=r.dropped,
    flip_tta=flip,
    seconds=round(r.seconds, 2),
    class_names=list(names),
    models={},
  )
  seen = _in_training(cfg, split, r.source)
  if seen is not None:
    summary["also_in_training"] = int(seen.sum())
  for name, (m, cm) in results.items():
    labels, preds = predictions[name]
    m = {**m, "interval95": metrics_lib.bootstrap(labels, preds, len(names))}
    if seen is not None:
      keep = ~seen
      m["without_training_copies"] = {
        "examples": int(keep.sum()),
        **metrics_lib.summarize(
          metrics_lib.confusion_matrix(labels[keep], preds[keep], len(names))
        ),
        "interval95": metrics_lib.bootstrap(
          labels[keep], preds[keep], len(names)
        ),
      }
    summary["models"][name] = {
      **m,
      "per_class": evaluation.per_class(cm, names),
      "confusion": cm.tolist(),
    }
    report.confusion_png(
      cm,
      names,
      out / f"confusion_{name}.png",
      f"{r.source.name} {split}, {name}: accuracy {m['accuracy']:.3f}",
    )
  (out / "metrics.json").write_text(json.dumps(summary, indent=2))
  if probabilities_out:
    teacher.save(
      probabilities_out,
      r.probabilities,
      base.row_ids(r.source),
      names,
      members=" ".join(summary["members"]),
      split=split,
      flip=flip,
    )
  return summary, out


def _in_training(cfg, split: str, src):
  """For FER2013's test splits, bool [rows]: the faces whose pixels equal
  a Training face's; else None."""
  if cfg.source != "fer2013" or split == cfg.train_split:
    return None
  return dedup.also_in(src, build.make_source(cfg, cfg.train_split))


def _figures(m: dict) -> str:
  ci = m["interval95"]
  return ", ".join(
    f"{k} {m[k]:.4f} [{ci[k][0]:.4f}, {ci[k][1]:.4f}]"
    for k in ("accuracy", "macro_f1", "mean_class_accuracy")
  )


def main(argv):
  if not flags.FLAGS["verbosity"].present:  # Orbax and JAX INFO lines
    logging.set_verbosity(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  try:
    summary, out = run(
      f.workdir,
      f.config,
      split=f.split,
      model=f.model,
      best=f.best,
      drop_unmapped=f.drop_unmapped,
      out=f.out,
      flip=f.flip,
      probabilities_out=f.probabilities_out,
    )
  except (ValueError, FileNotFoundError) as e:
    print(f"jaxfer.evaluate: error: {e}", file=sys.stderr)
    sys.exit(1)
  print(
    f"jaxfer.evaluate: {summary['examples']} examples of "
    f"{summary['source']} {summary['split']}"
    + (
      f" ({summary['dropped_unmapped']} of unmapped classes left out)"
      if summary["dropped_unmapped"]
      else ""
    )
    + f" -> {out}"
  )
  for name, m in summary["models"].items():
    recall = ", ".join(
      f"{c} {r['recall']:.2f}"
      for c, r in m["per_class"].items()
      if r["recall"] is not None
    )
    print(f"  {name}: {_figures(m)} (95% bootstrap); recall: {recall}")
    if "without_training_copies" in m:
      w = m["without_training_copies"]
      print(
        f"  {name}, the {summary['also_in_training']} faces also in "
        f"Training left out ({w['examples']} examples): {_figures(w)}"
      )


def _define_config(argv: list[str]) -> None:
  """The config flag, from the workdir's saved config (so that overrides
  are checked against its fields)."""
  workdir = _workdir_arg(argv)
  try:
    if workdir:
      saved, _ = ckpt_lib.read_config(
        workdir, best=ckpt_lib.chosen(workdir, "--nobest" not in argv)
      )
      config = defaults.from_json(saved)
    else:
      config = zoo.load_shipped().config
  except (FileNotFoundError, ValueError) as e:
    raise SystemExit(f"jaxfer.evaluate: error: {e}") from e
  config_flags.DEFINE_config_dict("config", config, lock_config=True)


if __name__ == "__main__":
  _define_flags()
  _define_config(sys.argv)
  app.run(main)
