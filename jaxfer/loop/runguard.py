"""What keeps a run's workdir sound on real clusters: one run per workdir,
resume only with the same config, and preemption (SIGTERM) turned into a
checkpoint and a "requeue me" exit.

* `WorkdirLock`: an exclusive ``flock`` on ``<workdir>/.lock`` held for the
  run; a second run on the workdir stops at once, naming the first one's
  process and host. The kernel drops the lock when its process dies, so a
  lock left by a killed run never blocks a restart. (``flock`` is local to
  a host on some network filesystems: two hosts on one NFS workdir are not
  caught there.)
* `config_changes`: the fields in which a resumed run's config differs
  from the one its checkpoint was written with, less `SAFE_TO_CHANGE`.
* `Preemption`: SIGTERM sets a flag; the loop asks `requested(step)` after
  every step. With several processes JAX's preemption sync point makes
  every process agree on the step (``jax.distributed`` started by
  `parallel.maybe_initialize`).
"""

import fcntl
import json
import os
import signal
import socket
import time

# Fields a resumed run may change: how long it runs (the learning-rate
# schedule follows total_steps, so a longer run's tail differs from a run
# planned that long), how it logs, evaluates and checkpoints, how data is
# read, and how the devices are used.
SAFE_TO_CHANGE = (
  "total_steps",
  "log_every",
  "eval_every",
  "confusion_every_eval",
  "checkpoint.every",
  "checkpoint.keep",
  "data.num_threads",
  "data.worker_count",
  "data.cache_dir",
  "data.eval_batch_size",
  "parallel.mode",
  "distributed.",
)

REQUEUE_EXIT = 75  # EX_TEMPFAIL: "try again", what requeue reads


class WorkdirBusy(RuntimeError):
  """Another live process holds the workdir."""


class Preempted(RuntimeError):
  """The run stopped on SIGTERM after writing a checkpoint."""


class WorkdirLock:
  """An exclusive lock on a workdir for as long as the run holds it."""

  def __init__(self, workdir):
    self.path = os.path.join(str(workdir), ".lock")
    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = os.pread(self._fd, 4096, 0).decode("utf-8", "replace")
      os.close(self._fd)
      try:
        who = json.loads(holder)
        who = (
          f"process {who['pid']} on {who['host']} (started {who['started']})"
        )
      except (ValueError, KeyError):
        who = "another process"
      raise WorkdirBusy(
        f"{workdir} is in use by {who}; wait for it to end, "
        "stop it, or use another --workdir"
      ) from None
    os.ftruncate(self._fd, 0)
    os.pwrite(
      self._fd,
      json.dumps(
        {
          "pid": os.getpid(),
          "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
      ).encode(),
      0,
    )

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None


def flatten(d: dict, prefix: str = "") -> dict:
  """{"a.b.c": value} of a nested dict (a config as JSON)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def config_changes(old: dict, new: dict, safe=SAFE_TO_CHANGE) -> list:
  """[(field, old value, new value)] of the unsafe differences."""
  a, b = flatten(old), flatten(new)
  changed = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
    if isinstance(va, list) or isinstance(vb, list):
      va, vb = (tuple(v) if isinstance(v, list) else v for v in (va, vb))
    if va != vb and not any(
      key == s or (s.endswith(".") and key.startswith(s)) for s in safe
    ):
      changed.append((key, va, vb))
  return changed


class Preemption:
  """SIGTERM -> checkpoint at the end of the current step, then exit."""

  def __init__(self):
    self.signalled = False
    self._previous = None

  def __enter__(self):
    if hasattr(signal, "SIGTERM"):
      try:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
      except ValueError:  # not the main thread (e.g. a notebook)
        self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.signalled = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def requested(self, step: int) -> bool:
    """Whether to stop after `step` (every process gives the same answer)."""
    import jax  # pylint: disable=g-import-not-at-top

    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

      return bool(multihost_utils.reached_preemption_sync_point(step))
    return self.signalled
