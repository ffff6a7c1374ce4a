"""The README's example of importing the functional steps runs as printed,
and what it prints holds: `exact_jvp` equals `exact` at one student step."""

import contextlib
import io
import pathlib
import re

import pytest

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _block_after(heading: str) -> str:
  text = (ROOT / "README.md").read_text()
  section = text[text.index(heading):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_importing_the_functional_steps_example_runs():
  code = _block_after("## Importing the functional steps")
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(code, "README.md", "exec"), {})  # pylint: disable=exec-used
  rel = float(out.getvalue().rsplit("=", 1)[1])
  assert rel < 1e-5, out.getvalue()
