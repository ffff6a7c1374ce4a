"""What the training loop writes, prints and draws: the training rows and
each `jaxfer.loop.evaluation.Evaluation` (metrics rows in
`metrics.jsonl` and TensorBoard, one printed line per model and group,
confusion PNGs). It computes nothing: the evaluation is done by then."""

import dataclasses
import pathlib

from jaxfer.core import report


def _line(prefix: str, m: dict) -> str:
  return prefix + ", ".join(f"{k} {v:.4f}" for k, v in m.items())


@dataclasses.dataclass
class Reporter:
  """Writes a run's rows.

  Attributes:
    writer: the run's `jaxfer.core.report.Writer` (rows of process 0).
    workdir: where confusion PNGs go.
    class_names: the confusion matrices' labels.
    confusion_every_eval: PNGs at every evaluation, else the last only.
    is_main: process 0 prints and draws.
  """

  writer: report.Writer
  workdir: pathlib.Path
  class_names: tuple
  confusion_every_eval: bool
  is_main: bool

  def train(self, step: int, metrics: dict, perf: dict) -> None:
    """The mean training metrics of the steps since the last row, and the
    loop's speed over them."""
    self.writer.write(step, "train", metrics)
    self.writer.write(step, "perf", perf)

  def evaluation(self, ev, final: bool) -> None:
    """Writes every model's and group's rows of `ev`, prints them, and
    draws the confusion matrices (at the last step, or every evaluation
    with `confusion_every_eval`)."""
    for split, evals in ev.splits.items():
      for name, (m, cm) in evals.items():
        self.writer.write(ev.step, split, m, model=name)
        if not self.is_main:
          continue
        print(_line(f"  step {ev.step} {split} {name}: ", m), flush=True)
        if final or self.confusion_every_eval:
          report.confusion_png(
            cm,
            self.class_names,
            self.workdir / f"confusion_{split}_{name.replace('/', '_')}.png",
            f"{split}, {name}, step {ev.step}: accuracy {m['accuracy']:.3f}",
          )
      summaries = ev.summaries[split]
      for name, m in summaries.items():
        self.writer.write(ev.step, split, m, model=name)
      if self.is_main:
        for group in sorted({n.rsplit("/", 1)[0] for n in summaries}):
          mean, std = summaries[f"{group}/mean"], summaries[f"{group}/std"]
          print(
            f"  step {ev.step} {split} {group} (mean +- std): "
            + ", ".join(f"{k} {mean[k]:.4f} +- {std[k]:.4f}" for k in mean),
            flush=True,
          )

  def text(self, tag: str, text: str) -> None:
    self.writer.text(tag, text)

  def sync(self) -> None:
    self.writer.sync()

  def close(self) -> None:
    self.writer.close()
