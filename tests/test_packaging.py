"""Packaging: the configs ship as `jaxfer.configs` and are found by name;
the sdist and wheel build and pass `twine check`; the wheel, installed
into a fresh virtual environment, trains the default job and predicts with
the shipped model from a folder that is not the repository."""

import os
import pathlib
import subprocess
import sys
import sysconfig

import numpy as np
from PIL import Image
import pytest
import tomllib

from jaxfer import configs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_and_maps_the_configs():
  meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
  ]
  found = {
    ".".join(p.parent.relative_to(ROOT).parts)
    for p in (ROOT / "jaxfer").rglob("__init__.py")
  }
  assert set(meta["packages"]) == found | {"jaxfer.configs"}
  assert meta["package-dir"] == {"jaxfer.configs": "configs"}


def test_a_config_by_name_by_path_and_an_unknown_one(tmp_path):
  assert "face2exp_fer2013" in configs.names() and "__init__" not in (
    configs.names()
  )
  got = configs.resolve("face2exp_fer2013:smoke")
  path, variant = got.rsplit(":", 1)
  assert variant == "smoke"
  assert pathlib.Path(path).samefile(ROOT / "configs" / "face2exp_fer2013.py")
  assert configs.resolve("default") == str(configs.FOLDER / "default.py")
  own = tmp_path / "mine.py"
  own.write_text("")
  assert configs.resolve(f"{own}:x") == f"{own}:x"
  assert configs.argv(["p", "--config", "default", "--config.seed=1"]) == [
    "p",
    "--config",
    str(configs.FOLDER / "default.py"),
    "--config.seed=1",
  ]
  assert configs.argv(["p", "--config=default:smoke"]) == [
    "p",
    f"--config={configs.FOLDER / 'default.py'}:smoke",
  ]
  with pytest.raises(
    SystemExit,
    match=r"no shipped config .*shipped: "
    r"default, distill_fer2013",
  ):
    configs.argv(["p", "--config=face2exp"])


def _run(cmd, **kw):
  p = subprocess.run(
    cmd, capture_output=True, text=True, timeout=600, check=False, **kw
  )
  assert p.returncode == 0, (cmd, p.stdout[-2000:], p.stderr[-3000:])
  return p


@pytest.mark.slow
def test_the_wheel_runs_anywhere(tmp_path):
  pytest.importorskip("build", reason="the test extra installs build")
  pytest.importorskip("twine", reason="the test extra installs twine")
  dist = tmp_path / "dist"
  _run(
    [
      sys.executable,
      "-m",
      "build",
      "--no-isolation",
      "-o",
      str(dist),
      str(ROOT),
    ],
    cwd=tmp_path,
  )  # the sdist, then the wheel from it
  (wheel,) = dist.glob("*.whl")
  (sdist,) = dist.glob("*.tar.gz")
  assert (
    "PASSED"
    in _run(
      [sys.executable, "-m", "twine", "check", str(wheel), str(sdist)]
    ).stdout
  )
  # A fresh venv: jaxfer from the wheel; its dependencies from this
  # environment's site-packages (a .pth path: offline, and this
  # environment's editable jaxfer is not seen, its own .pth not read).
  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
  py = venv / "bin" / "python"
  site = pathlib.Path(
    _run(
      [
        str(py),
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
      ]
    ).stdout.strip()
  )
  (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  _run(
    [
      sys.executable,
      "-m",
      "pip",
      "--python",
      str(py),
      "install",
      "-q",
      "--no-deps",
      str(wheel),
    ]
  )
  away = tmp_path / "elsewhere"
  away.mkdir()
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  env.pop("PYTHONPATH", None)
  where = _run(
    [
      str(py),
      "-c",
      "import jaxfer, jaxfer.configs, jaxfer.zoo; "
      "print(jaxfer.__file__); print(jaxfer.configs.__file__)",
    ],
    cwd=away,
    env=env,
  ).stdout.split()
  assert all(pathlib.Path(w).is_relative_to(site) for w in where), where
  p = _run(
    [
      str(py),
      "-m",
      "jaxfer.main",
      "--config",
      "default:smoke",
      "--config.total_steps=4",
      "--workdir",
      str(away / "wd"),
    ],
    cwd=away,
    env=env,
  )
  assert "step 4" in p.stdout + p.stderr
  face = np.random.default_rng(0).integers(0, 255, (60, 50), np.uint8)
  Image.fromarray(face).save(away / "face.png")
  p = _run(
    [str(py), "-m", "jaxfer.predict", "--no-detect", "face.png"],
    cwd=away,
    env=env,
  )
  assert p.stdout.startswith("face.png: "), p.stdout
