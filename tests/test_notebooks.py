"""Every notebook runs end to end on a real Jupyter kernel (papermill with
`SMOKE = True`) and shows its figures; the notebooks keep the shape the
README promises (an install cell, a papermill parameters cell, a badge)."""

import base64
import json
import pathlib
import re
import sys

import papermill  # a test dependency (pyproject: test extra)
import pytest

from conftest import FER_SAMPLE
from conftest import need
from jaxfer import notebook

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# name -> (needs the FER2013 sample, the least number of figures shown)
EXPECTED = {
  "quickstart": (False, 4),
  "face2exp": (True, 2),
  "dtm": (True, 4),
  "omni_supervised": (True, 3),
}


def _cells(nb, kind="code"):
  return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def test_every_notebook_is_listed_and_has_the_documented_shape():
  assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(EXPECTED)
  readme = (ROOT / "docs" / "notebooks.md").read_text()
  for name in EXPECTED:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    badge = (
      f"https://colab.research.google.com/github/"
      f"{notebook.REPO.split('github.com/')[1]}/blob/main/notebooks/"
      f"{name}.ipynb"
    )
    assert badge in readme, f"docs/notebooks.md lacks the Colab badge of {name}"
    assert badge in _cells(nb, "markdown")[0]
    code = _cells(nb)
    assert notebook.REPO in code[0] and "google.colab" in code[0]
    params = [
      c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", ())
    ]
    assert params and "SMOKE = True" in "".join(params[0]["source"])
    # the library does the work: no function or class defined in a cell
    assert not [c for c in code if re.search(r"^\s*(def|class) ", c, re.M)]
    assert not any(
      c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"
    ), f"{name}: saved outputs"


def _kernel(tmp_path, monkeypatch) -> str:
  """A kernelspec running this interpreter (a `python3` spec of the user's
  own Jupyter could point at another Python)."""
  spec = tmp_path / "jupyter" / "kernels" / "jaxfer-test"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(
    json.dumps(
      {
        "argv": [
          sys.executable,
          "-m",
          "ipykernel_launcher",
          "-f",
          "{connection_file}",
        ],
        "display_name": "jaxfer test",
        "language": "python",
      }
    )
  )
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  return "jaxfer-test"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_on_a_kernel(name, tmp_path, monkeypatch):
  sample, figures = EXPECTED[name]
  if sample:
    need(FER_SAMPLE)
  out = tmp_path / f"{name}.ipynb"
  papermill.execute_notebook(
    str(NOTEBOOKS / f"{name}.ipynb"),
    str(out),
    kernel_name=_kernel(tmp_path, monkeypatch),
    parameters=dict(SMOKE=True, WORKDIR=str(tmp_path / "run")),
    cwd=str(NOTEBOOKS),
    progress_bar=False,
  )  # raises on a cell error
  nb = json.loads(out.read_text())
  pngs = [
    base64.b64decode(o["data"]["image/png"])
    for c in nb["cells"]
    if c["cell_type"] == "code"
    for o in c["outputs"]
    if "image/png" in o.get("data", {})
  ]
  assert len(pngs) >= figures, f"{name}: {len(pngs)} figures shown"
  assert all(p.startswith(b"\x89PNG") and len(p) > 2000 for p in pngs)
  text = "".join(
    o.get("text", "")
    if isinstance(o.get("text"), str)
    else "".join(o.get("text", ()))
    for c in nb["cells"]
    if c["cell_type"] == "code"
    for o in c["outputs"]
  )
  assert "device(s)" in text  # the devices cell ran
  if sample:
    assert str(FER_SAMPLE) in text  # trained on the sample
