"""The notebooks' code cells run top to bottom (IPython display stubbed)."""

import json
import os
import pathlib
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["quickstart.ipynb"])
def test_notebook_runs(name, monkeypatch):
  shown = []
  display = types.ModuleType("IPython.display")
  display.display = shown.append
  display.Image = lambda filename: os.path.getsize(filename)
  # matplotlib looks IPython up when it picks a backend and makes figures.
  ipython = types.ModuleType("IPython")
  ipython.get_ipython, ipython.version_info = lambda: None, (8, 0, 0)
  monkeypatch.setitem(sys.modules, "IPython", ipython)
  monkeypatch.setitem(sys.modules, "IPython.display", display)
  monkeypatch.chdir(ROOT / "notebooks")
  nb = json.loads((ROOT / "notebooks" / name).read_text())
  scope = {}
  for cell in nb["cells"]:
    if cell["cell_type"] == "code":
      exec(compile("".join(cell["source"]), name, "exec"), scope)  # pylint: disable=exec-used
  assert shown and shown[0] > 1000           # the confusion-matrix PNG
  assert "test/model/accuracy" in scope["result"]
