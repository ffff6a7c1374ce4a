"""What a run survives: SIGTERM (preemption), SIGKILL at many moments
(checkpoint writes included), a changed config on resume, a second run on
the same workdir, corrupt and truncated input files, a torn metrics line."""

import bz2
import gzip
import json
import os
import pathlib
import random
import signal
import time

import jax
import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import config
from conftest import need
from conftest import spawn
from jaxfer.core import report
from jaxfer.data.base import DataError
from jaxfer.data.sources import fer2013
from jaxfer.loop import runguard
from jaxfer.loop import train

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS = [
  "--config",
  str(ROOT / "configs/default.py") + ":smoke",
  "--config.total_steps=40",
  "--config.checkpoint.every=10",
  "--config.eval_every=20",
  "--config.log_every=5",
]


def _cli(workdir, *extra, log=None):
  out = open(f"{log}.out", "w") if log else None
  return spawn(
    "-m", "jaxfer.main", *ARGS, *extra, f"--workdir={workdir}", out=out
  )


def _rows(workdir):
  path = pathlib.Path(workdir) / "metrics.jsonl"
  rows = []
  for line in path.read_text().splitlines() if path.exists() else ():
    try:
      rows.append(json.loads(line))
    except ValueError:  # a line being written
      pass
  return [r for r in rows if r["split"] != "perf"]


def _params(workdir, step=40):
  from jaxfer.loop import checkpoint  # pylint: disable=g-import-not-at-top

  return jax.tree.leaves(
    checkpoint.read_arrays(
      pathlib.Path(workdir) / "checkpoints" / str(step) / "state"
    )
  )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of ARGS."""
  wd = tmp_path_factory.mktemp("survival") / "ref"
  p = _cli(wd)
  out, _ = p.communicate(timeout=300)
  assert p.returncode == 0, out
  return wd


def _tensorboard(workdir) -> dict:
  """{(tag, step): value} of the TensorBoard scalars as TensorBoard shows
  them: event files in order, records read until a torn one, a
  SessionLog START at step s (tensorboardX's purge_step) hiding every
  earlier value at steps >= s; a (tag, step) written twice without such a
  purge is an error. Timing tags (perf/) are left out."""
  import struct  # pylint: disable=g-import-not-at-top

  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  files = sorted(
    (pathlib.Path(workdir) / "tb").glob("events.out.tfevents.*"),
    key=lambda f: f.stat().st_mtime_ns,
  )
  seen = {}
  for f in files:
    data, pos = f.read_bytes(), 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos : pos + 8])
      if pos + 16 + length > len(data):
        break  # torn by a kill
      event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
      pos += 16 + length
      if event.HasField("session_log") and event.session_log.status == 1:
        seen = {k: v for k, v in seen.items() if k[1] < event.step}
      for v in event.summary.value:
        if v.tag.startswith("perf/") or not v.HasField("simple_value"):
          continue
        key = (v.tag, event.step)
        assert key not in seen, f"{key} written twice in {f.name}"
        seen[key] = v.simple_value
  return seen


def _same_run(workdir, reference):
  assert _rows(workdir) == _rows(reference)
  tb, ref_tb = _tensorboard(workdir), _tensorboard(reference)
  assert tb == ref_tb and len(tb) > 20
  for a, b in zip(_params(workdir), _params(reference)):
    np.testing.assert_array_equal(a, b)


def test_sigterm_checkpoints_exits_for_requeue_and_resumes(tmp_path, reference):
  wd = tmp_path / "wd"
  p = _cli(wd)
  deadline = time.time() + 240
  # Between checkpoints (every 10): after the log row of step 5 or 15.
  while not any(
    r["split"] == "train" and r["step"] in (5, 15) for r in _rows(wd)
  ):
    assert p.poll() is None and time.time() < deadline
    time.sleep(0.05)
  p.send_signal(signal.SIGTERM)
  out, _ = p.communicate(timeout=120)
  assert p.returncode == runguard.REQUEUE_EXIT, out
  assert "SIGTERM: stopped after step" in out
  stopped = int(out.split("stopped after step ")[1].split()[0])
  assert stopped < 40 and (wd / "checkpoints" / str(stopped)).exists()
  again = _cli(wd)
  out2, _ = again.communicate(timeout=300)
  assert again.returncode == 0, out2
  assert f"resumed from step {stopped}" in out2
  _same_run(wd, reference)


def _train_rows(workdir):
  return sum(r["split"] == "train" for r in _rows(workdir))


def _checkpoints(workdir):
  d = pathlib.Path(workdir) / "checkpoints"
  names = [c.name for c in d.iterdir()] if d.exists() else []
  return {n for n in names if n.isdigit()}, any("tmp" in n for n in names)


def test_sigkill_at_many_moments_checkpoint_writes_included(
  tmp_path, reference
):
  """Killed 6 times, each at a moment defined by the run's progress, not
  the clock (a quiet machine finishes 40 steps before a timed kill): during
  start-up (under 2.5 s: no run gets past compiling by then), after a
  random number of new train rows, and as soon as a checkpoint's
  temporary directory appears (mid-write) or, if the 5 ms poll misses it,
  right after the next checkpoint commits. Every restart must work and
  the end equal the uninterrupted run."""
  rng = random.Random(os.getpid())
  wd = tmp_path / "wd"
  moments = ["start-up", "mid-write", "rows", "mid-write", "start-up", "rows"]
  kills = []
  for attempt, moment in enumerate(moments + ["finish"]):
    p = _cli(wd, log=tmp_path / f"run{attempt}")
    if moment == "finish":
      assert p.wait(timeout=300) == 0
      break
    deadline = time.time() + 240
    start_up = time.time() + rng.uniform(0.3, 2.5)
    rows_at = _train_rows(wd) + rng.randint(1, 3)
    done_before = _checkpoints(wd)[0]
    while p.poll() is None:
      assert time.time() < deadline, f"attempt {attempt} ({moment}) hung"
      if moment == "start-up" and time.time() >= start_up:
        break
      if moment == "rows" and _train_rows(wd) >= rows_at:
        break
      if moment == "mid-write":
        done, writing = _checkpoints(wd)
        if writing or done - done_before:
          break
      time.sleep(0.005)
    if p.poll() is not None:  # it finished before the kill
      assert p.returncode == 0
      break
    p.send_signal(signal.SIGKILL)
    p.wait()
    kills.append(moment)
  assert len(kills) >= 3, kills
  _same_run(wd, reference)


def test_changed_config_on_resume_names_the_fields(tmp_path):
  c = config("default", "smoke")
  c.total_steps, c.checkpoint.every = 4, 2
  train.run(c, str(tmp_path))
  c2 = config("default", "smoke")
  c2.total_steps, c2.checkpoint.every = 4, 2
  c2.optimizer.lr, c2.model.width = 0.123, 16
  with pytest.raises(ValueError) as e:
    train.run(c2, str(tmp_path))
  msg = str(e.value)
  assert "optimizer.lr: " in msg and "-> 0.123" in msg
  assert "model.width" in msg and "another --workdir" in msg
  assert (
    json.loads((tmp_path / "config.json").read_text())["optimizer"]["lr"]
    != 0.123
  )  # the saved config is untouched
  c3 = config("default", "smoke")  # safe: a longer run
  c3.total_steps, c3.checkpoint.every, c3.log_every = 6, 2, 1
  result = train.run(c3, str(tmp_path))
  assert (
    result
    and json.loads((tmp_path / "config.json").read_text())["total_steps"] == 6
  )


def test_second_run_on_a_workdir_stops_naming_the_first(tmp_path):
  wd = tmp_path / "wd"
  first = _cli(wd, "--config.total_steps=100000")
  deadline = time.time() + 120
  while not (wd / ".lock").exists() or not (wd / ".lock").read_text():
    assert first.poll() is None and time.time() < deadline
    time.sleep(0.05)
  second = _cli(wd)
  out, _ = second.communicate(timeout=120)
  assert second.returncode == 1
  assert f"in use by process {first.pid}" in out
  first.send_signal(signal.SIGKILL)
  first.wait()
  # The dead process's lock does not block a restart.
  lock = runguard.WorkdirLock(wd)
  lock.release()


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
  need(FER_SAMPLE)
  raw = FER_SAMPLE.read_bytes()
  cases = {
    "cut.csv.bz2": bz2.compress(raw)[:-500],
    "cut.csv.gz": gzip.compress(raw)[: len(gzip.compress(raw)) // 2],
    "noise.csv.gz": b"\x1f\x8b" + bytes(range(256)) * 4,
    "empty.csv": b"",
    "cut_row.csv": raw[: len(raw) // 2],
  }
  for name, data in cases.items():
    (tmp_path / name).write_bytes(data)
  with pytest.raises(
    DataError,
    match=r"cut.csv.bz2: cannot be read after "
    r"data row \d+ .*truncated or corrupt",
  ):
    fer2013.parse_csv(str(tmp_path / "cut.csv.bz2"))
  with pytest.raises(
    DataError,
    match=r"cut.csv.gz: cannot be read after "
    r"data row \d+",
  ):
    fer2013.parse_csv(str(tmp_path / "cut.csv.gz"))
  with pytest.raises(DataError, match="noise.csv.gz: cannot be read"):
    fer2013.parse_csv(str(tmp_path / "noise.csv.gz"))
  with pytest.raises(DataError, match="empty.csv: .*the file is empty"):
    fer2013.parse_csv(str(tmp_path / "empty.csv"))
  with pytest.raises(
    DataError,
    match=r"cut_row.csv, data row \d+ \(line "
    r"\d+\)",
  ):
    fer2013.parse_csv(str(tmp_path / "cut_row.csv"))
  # Even when bad rows may be skipped, a truncated stream is an error.
  with pytest.raises(DataError, match="truncated or corrupt"):
    fer2013.parse_csv(str(tmp_path / "cut.csv.gz"), on_bad="skip")


def test_parse_cache_follows_the_file(tmp_path):
  need(FER_SAMPLE)
  path = tmp_path / "fer.csv"
  lines = FER_SAMPLE.read_text().splitlines()
  path.write_text("\n".join(lines[:50]) + "\n")
  cache = str(tmp_path / "cache")
  fer2013.load_arrays.cache_clear()
  assert len(fer2013.load_arrays(str(path), "error", cache)[1]) == 49
  path.write_text("\n".join(lines[:80]) + "\n")
  fer2013.load_arrays.cache_clear()
  assert len(fer2013.load_arrays(str(path), "error", cache)[1]) == 79


def test_torn_metrics_line_is_dropped_on_resume(tmp_path):
  rows = [{"step": s, "split": "train", "loss": 1.0} for s in (5, 10, 15)]
  text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 20, "spl'
  (tmp_path / "metrics.jsonl").write_text(text)
  w = report.Writer(str(tmp_path), resume_step=10)
  w.close()
  kept = report.read_rows(tmp_path)
  assert [r["step"] for r in kept] == [5, 10]
