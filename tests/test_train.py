"""The training loop end to end: CLI, config errors, resume after SIGKILL,
non-finite loss."""

import os
import pathlib
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import python
from conftest import spawn
from jaxfer import configs
from jaxfer.core import report
from jaxfer.data.base import DataError
from jaxfer.loop import checkpoint
from jaxfer.loop import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = ["--config", str(ROOT / "configs/default.py") + ":smoke"]


def _cli(*args, log=None):
  """Starts the CLI; output goes to pipes, or to files when `log` is set
  (a process that is waited on, not communicated with, must not fill a
  pipe)."""
  if log is None:
    return spawn("-m", "jaxfer.main", *args, err=subprocess.PIPE)
  out, err = open(f"{log}.out", "w"), open(f"{log}.err", "w")
  return spawn("-m", "jaxfer.main", *args, out=out, err=err)


def _rows(workdir, drop=("perf",)):
  return [r for r in report.read_rows(workdir) if r["split"] not in drop]


def _final_params(workdir):
  ckpt = pathlib.Path(workdir) / "checkpoints"
  step = max(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
  tree = checkpoint.read_arrays(ckpt / str(step) / "state")
  return step, tree


@pytest.mark.slow
def test_cli_trains_default_and_writes_everything(tmp_path):
  p = _cli(*SMOKE, "--workdir", str(tmp_path))
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err
  assert f"writing to {tmp_path}" in out
  rows = _rows(tmp_path)
  evals = [r for r in rows if r["split"] == "test"]
  assert [r["step"] for r in evals] == [10, 20]
  for key in ("loss", "accuracy", "mean_class_accuracy", "macro_f1"):
    assert all(0 <= r[key] < 10 for r in evals), key
  assert [r["step"] for r in rows if r["split"] == "train"] == [5, 10, 15, 20]
  assert (tmp_path / "confusion_test_model.png").stat().st_size > 1000
  assert list((tmp_path / "tb").iterdir())
  assert _final_params(tmp_path)[0] == 20


def test_config_typo_is_an_error_naming_the_field(tmp_path):
  p = _cli(*SMOKE, "--workdir", str(tmp_path), "--config.data.batchsize=3")
  _, err = p.communicate(timeout=120)
  assert p.returncode != 0 and "batchsize" in err


# DTM with FlexMatch: its per-face buffer must come back exactly too.
_DTM = [
  "--config.method=dtm",
  "--config.mu=1",
  "--config.data.labeled_fraction=0.5",
  "--config.dtm.threshold=flexmatch",
  "--config.dtm.tau=0.3",
]


# The supervised loop's many-kill test is tests/test_survival.py.
@pytest.mark.slow
@pytest.mark.parametrize("method", ["dtm"])
def test_sigkill_at_any_moment_resumes_to_identical_results(tmp_path, method):
  args = [
    *SMOKE,
    "--config.total_steps=40",
    "--config.checkpoint.every=5",
    "--config.eval_every=20",
    *(_DTM if method == "dtm" else []),
  ]
  ref = _cli(*args, "--workdir", str(tmp_path / "ref"), log=tmp_path / "ref")
  assert ref.wait(timeout=300) == 0
  rng = random.Random(os.getpid())
  wd = tmp_path / "killed"
  p = _cli(*args, "--workdir", str(wd), log=tmp_path / "killed")
  deadline = time.time() + 240
  while not (wd / "checkpoints" / "5").exists() and time.time() < deadline:
    time.sleep(0.05)
  time.sleep(rng.uniform(0.0, 1.5))
  p.send_signal(signal.SIGKILL)
  p.wait()
  resumed = _cli(*args, "--workdir", str(wd))
  out, err = resumed.communicate(timeout=300)
  assert resumed.returncode == 0, err
  assert "resumed from step" in out
  assert _rows(wd) == _rows(tmp_path / "ref")
  step_a, a = _final_params(wd)
  step_b, b = _final_params(tmp_path / "ref")
  assert step_a == step_b == 40
  for x, y in zip(*map(lambda t: __import__("jax").tree.leaves(t), (a, b))):
    np.testing.assert_array_equal(x, y)
  if method == "dtm":
    assert (np.asarray(a["policy"]["selected"]) >= 0).any()


@pytest.mark.slow
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = configs.load("default:smoke")
  config.optimizer.lr = 1e12
  config.optimizer.warmup_steps = 0
  config.log_every = 1
  config.checkpoint.every = 1
  with pytest.raises(train.NonFiniteLoss, match="loss is") as e:
    train.run(config, str(tmp_path))
  step = int(str(e.value).split("at step ")[1].split(";")[0])
  saved = sorted(
    int(p.name)
    for p in (tmp_path / "checkpoints").iterdir()
    if p.name.isdigit()
  )
  assert all(s < step for s in saved)
  assert f"last good checkpoint is step {saved[-1] if saved else None}" in str(
    e.value
  )


def test_class_count_mismatch_names_the_field(tmp_path):
  config = configs.load("default:smoke")
  config.data.num_classes = 8
  with pytest.raises(DataError, match="config.data.num_classes=8"):
    train.run(config, str(tmp_path))


@pytest.mark.slow
def test_predict_cli_matches_in_process_model(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from jaxfer import zoo  # pylint: disable=g-import-not-at-top
  from jaxfer.data.sources import synthetic  # pylint: disable=g-import-not-at-top

  p = _cli(*SMOKE, "--workdir", str(tmp_path / "wd"))
  p.communicate(timeout=300)
  assert p.returncode == 0
  faces = synthetic.SyntheticFaces(3, seed=99)
  paths = []
  for i in range(3):
    paths.append(str(tmp_path / f"face{i}.png"))
    Image.fromarray(faces[i]["image"][..., 0]).save(paths[-1])
  p = python(
    "-m",
    "jaxfer.predict",
    "--no-detect",
    "--workdir",
    tmp_path / "wd",
    "--top=7",
    *paths,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  out = p.stdout
  clf = zoo.load(str(tmp_path / "wd"), model="model")
  probs = clf.probabilities([faces[i]["image"] for i in range(3)])
  lines = [line for line in out.splitlines() if line.startswith(str(tmp_path))]
  assert len(lines) == 3
  for line, p in zip(lines, probs):
    printed = dict(kv.rsplit(" ", 1) for kv in line.split(": ")[1].split(", "))
    assert len(printed) == 7
    for name, value in printed.items():
      assert float(value) == pytest.approx(
        p[clf.class_names.index(name)], abs=1e-3
      )


def test_a_phase_boundary_ends_a_training_row(tmp_path, monkeypatch):
  """Phases need not share metric keys: the loop ends the pending row at
  the last step of a phase (here step 7, no log step), so each row holds
  one phase's metrics, and the second phase's step is the one that runs
  from its first step on."""
  from conftest import config  # pylint: disable=g-import-not-at-top
  from jaxfer import methods  # pylint: disable=g-import-not-at-top

  built = methods.build

  def two_phases(*args, **kwargs):
    m = built(*args, **kwargs)

    def second(state, batch, rng):
      state, metrics = m.step(state, batch, rng)
      return state, {"loss": metrics["loss"] * 0 + 7.0, "second": 1.0}

    return methods.Method(m.init, ((0, m.step), (7, second)), m.eval_variables)

  monkeypatch.setattr(train.methods, "build", two_phases)
  c = config("default", "smoke")
  c.total_steps, c.log_every, c.eval_every, c.checkpoint.every = 12, 5, 12, 12
  train.run(c, str(tmp_path))
  rows = [r for r in _rows(tmp_path) if r["split"] == "train"]
  assert [r["step"] for r in rows] == [5, 7, 10, 12]
  first, second = rows[:2], rows[2:]
  assert all("second" not in r and r["loss"] != 7.0 for r in first)
  assert all(r["second"] == 1.0 and r["loss"] == 7.0 for r in second)
