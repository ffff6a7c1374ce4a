"""Run reporting: metrics.jsonl, TensorBoard events, confusion-matrix PNGs.

Only process 0 writes. TensorBoard events come from tensorboardX, which does
not need TensorFlow.
"""

import json
import os
import pathlib

import numpy as np


class Writer:
  """Writes metric dicts to `<workdir>/metrics.jsonl` and TensorBoard."""

  def __init__(self, workdir: str, *, resume_step: int = 0):
    import jax  # pylint: disable=g-import-not-at-top  (summarize stays light)

    self.active = jax.process_index() == 0
    self.path = pathlib.Path(workdir) / "metrics.jsonl"
    if not self.active:
      return
    if resume_step:
      self._truncate(resume_step)
    else:  # a fresh start: nothing of an earlier try stays
      if self.path.exists():
        self.path.unlink()
      # (a run killed before its first checkpoint left events that no
      # purge_step would hide: the rerun writes the same steps again)
      for f in (self.path.parent / "tb").glob("events.out.tfevents.*"):
        f.unlink()
    self._files = 0
    # TensorBoard hides earlier events at steps >= purge_step: the rows of
    # the resume step itself (logged with its checkpoint) stay.
    self.tb = self._open(purge_step=resume_step + 1 if resume_step else None)

  def _open(self, purge_step=None):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top

    self._files += 1
    return SummaryWriter(
      str(self.path.parent / "tb"),
      purge_step=purge_step,
      filename_suffix=f".{os.getpid()}.{self._files}",
    )

  def sync(self) -> None:
    """Puts every row written so far on disk, TensorBoard events included
    (tensorboardX writes them from a queue in a thread: only closing the
    file drains it), so a checkpoint saved next never outlives its rows.
    The next rows go to a new event file."""
    if self.active:
      self.tb.close()
      self.tb = self._open()

  def _truncate(self, step: int) -> None:
    """Drops lines written after `step`, the step a resumed run restarts at.

    A resumed run then leaves the same file as an uninterrupted one.
    """
    if not self.path.exists():
      return
    keep = []
    for line in self.path.read_text().splitlines():
      try:
        row = json.loads(line)
      except ValueError:
        continue  # the last line, torn by a kill in mid-write
      if row["step"] <= step:
        keep.append(line)
    self.path.write_text("".join(line + "\n" for line in keep))

  def write(self, step: int, split: str, metrics: dict, **tags) -> None:
    if not self.active:
      return
    row = {
      "step": int(step),
      "split": split,
      **tags,
      **{k: float(v) for k, v in metrics.items()},
    }
    with self.path.open("a") as f:
      f.write(json.dumps(row) + "\n")
    prefix = "/".join([split, *map(str, tags.values())])
    for k, v in metrics.items():
      self.tb.add_scalar(f"{prefix}/{k}", float(v), step)

  def text(self, tag: str, text: str, step: int = 0) -> None:
    if self.active:
      self.tb.add_text(tag, text, step)

  def close(self) -> None:
    if self.active:
      self.tb.close()


def read_rows(workdir) -> list:
  """The rows of `<workdir>/metrics.jsonl`, in order; a torn last line (a
  run killed while writing it) is left out, a bad line elsewhere is an
  error naming it."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    raise FileNotFoundError(f"{path}: no metrics (is {workdir} a workdir?)")
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  rows = []
  for i, line in enumerate(lines):
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError as e:
      if i < len(lines) - 1:
        raise ValueError(f"{path}: line {i + 1} is not JSON ({e})") from e
  return rows


def subplots(*shape, figsize):
  """A figure of its own (no pyplot, so the caller's backend, e.g. a
  notebook's inline one, is left as it was) and its axes."""
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  fig = Figure(figsize=figsize)
  return fig, fig.subplots(*shape)


def confusion_png(cm: np.ndarray, class_names, path: str, title: str = ""):
  """Saves a row-normalised confusion matrix with counts as a PNG."""
  cm = np.asarray(cm)
  rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
  n = len(class_names)
  fig, ax = subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.8 * n))
  ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
  ax.set_xticks(range(n), class_names, rotation=45, ha="right")
  ax.set_yticks(range(n), class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title, fontsize=9)
  for i in range(n):
    for j in range(n):
      ax.text(
        j,
        i,
        f"{cm[i, j]}\n{rates[i, j]:.0%}",
        ha="center",
        va="center",
        fontsize=7,
        color="white" if rates[i, j] > 0.5 else "black",
      )
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def threshold_curves(rows: list, class_names, path) -> None:
  """PNG of per-class pseudo-label curves from `train` rows of
  metrics.jsonl: the threshold, the share of the unlabeled batch kept with
  each pseudo-label and, where rows carry `correct/<c>` (pools with hidden
  true labels), the precision of the kept pseudo-labels (correct / kept)."""
  rows = [r for r in rows if "threshold/0" in r]
  if not rows:
    return
  steps = [r["step"] for r in rows]
  panels = [("threshold", "threshold"), ("kept", "kept (share of batch)")]
  if "correct/0" in rows[0]:
    panels.append(("precision", "precision of kept labels"))
  fig, axes = subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
  for ax, (key, title) in zip(np.atleast_1d(axes), panels):
    for c, name in enumerate(class_names):
      if key == "precision":
        kept = np.array([r[f"kept/{c}"] for r in rows])
        right = np.array([r[f"correct/{c}"] for r in rows])
        y = np.where(kept > 0, right / np.where(kept > 0, kept, 1), np.nan)
      else:
        y = [r[f"{key}/{c}"] for r in rows]
      ax.plot(steps, y, label=name)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
  np.atleast_1d(axes)[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def precision_curves(curves: dict, class_names, path, *, marks=None) -> None:
  """PNG of mined-label precision against how many faces a class keeps.

  `curves[c]` is the precision of the best n faces of class c, n = 1...;
  `marks[c]`, optional, the count actually kept (drawn as a dot).
  """
  fig, ax = subplots(figsize=(5.5, 3.8))
  for c, name in enumerate(class_names):
    y = np.asarray(curves.get(c, ()))
    if not y.size:
      continue
    (line,) = ax.plot(np.arange(1, y.size + 1), y, label=name)
    n = (marks or {}).get(c, 0)
    if 0 < n <= y.size:
      ax.plot([n], [y[n - 1]], "o", color=line.get_color())
  ax.set_xscale("log")
  ax.set_xlabel("faces kept (best first)")
  ax.set_ylabel("precision of the mined labels")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
