"""The documents: the API page's example runs as printed (and `exact_jvp`
equals `exact` at one student step, as it prints); the site builds with
warnings as errors; the README stays short; no page carries dates or
commit hashes."""

import contextlib
import io
import pathlib
import re
import subprocess
import sys

import pytest

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _block_after(heading: str) -> str:
  text = (ROOT / "docs" / "api.md").read_text()
  section = text[text.index(heading) :]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_importing_the_functional_steps_example_runs():
  code = _block_after("# Importing the functional steps")
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(code, "docs/api.md", "exec"), {})  # pylint: disable=exec-used
  rel = float(out.getvalue().rsplit("=", 1)[1])
  assert rel < 1e-5, out.getvalue()


def test_the_site_builds_with_warnings_as_errors(tmp_path):
  pytest.importorskip("sphinx", reason="the test extra installs Sphinx")
  p = subprocess.run(
    [
      sys.executable,
      "-m",
      "sphinx",
      "-W",
      "--keep-going",
      "-E",
      "-q",
      "-b",
      "html",
      str(ROOT / "docs"),
      str(tmp_path / "html"),
    ],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert p.returncode == 0, p.stderr[-4000:]
  assert (tmp_path / "html" / "api.html").exists()
  api = (tmp_path / "html" / "api.html").read_text()
  assert "exact_jvp" in api and "load_shipped" in api  # autodoc ran
  assert (tmp_path / "html" / "notebooks" / "dtm.html").exists()


def _pages():
  return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("check", ["length", "history"])
def test_readme_is_short_and_no_page_tells_history(check):
  if check == "length":
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    return
  bad = []
  for page in _pages():
    if "_build" in page.parts or "notebooks" in page.parts:
      continue
    for n, line in enumerate(page.read_text().splitlines(), 1):
      if re.search(
        r"\b20\d\d-\d\d-\d\d\b|\bcommit [0-9a-f]{7}|"
        r"\bissue \d+",
        line,
      ):
        bad.append(f"{page.relative_to(ROOT)}:{n}: {line.strip()}")
  assert not bad, "\n".join(bad)
