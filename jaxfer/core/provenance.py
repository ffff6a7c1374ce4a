"""What started a run, kept in its workdir at the start: the command line
exactly as typed, the folder it was typed in, and the code's version (the
package's version and, in a git checkout, its commit and whether files
differed from it). `python -m jaxfer.zoo` copies it into a shipped
model's card, so no card's command is typed after the run.
"""

import datetime
import importlib.metadata
import json
import os
import pathlib
import shlex
import subprocess
import sys

FILE = "started.json"
_PACKAGE = pathlib.Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
  try:
    p = subprocess.run(
      ["git", "-C", str(_PACKAGE), *args],
      capture_output=True,
      text=True,
      timeout=10,
      check=False,
    )
  except (OSError, subprocess.TimeoutExpired):
    return None
  return p.stdout.strip() if p.returncode == 0 else None


def code_version() -> dict:
  """{"jaxfer": the installed version, "commit": the checkout's commit or
  None, "modified": whether jaxfer/ differs from it (None: no checkout)}."""
  try:
    version = importlib.metadata.version("jaxfer")
  except importlib.metadata.PackageNotFoundError:
    version = None
  commit = _git("rev-parse", "HEAD")
  status = _git("status", "--porcelain", "--", ".") if commit else None
  return dict(
    jaxfer=version,
    commit=commit,
    modified=None if status is None else bool(status),
  )


def command() -> str:
  """This process's command line as typed (`sys.orig_argv`), the
  interpreter written `python`."""
  argv = list(getattr(sys, "orig_argv", None) or sys.argv)
  return shlex.join(["python", *argv[1:]])


def record(workdir) -> dict:
  """Writes `<workdir>/started.json` (the command, the folder, the code
  version, the UTC time) and returns it."""
  rec = dict(
    command=command(),
    cwd=os.getcwd(),
    code=code_version(),
    started=datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds"
    ),
  )
  path = pathlib.Path(workdir) / FILE
  path.write_text(json.dumps(rec, indent=1) + "\n")
  return rec


def read(workdir) -> dict:
  """The record of `workdir`; a workdir without one is an error naming the
  file."""
  path = pathlib.Path(workdir) / FILE
  if not path.exists():
    raise FileNotFoundError(
      f"{path} is missing: the run's command and code version are recorded "
      "when a fresh run starts (jaxfer.loop.train.run); a workdir started "
      "before that has none"
    )
  return json.loads(path.read_text())
