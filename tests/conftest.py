"""Shared fixtures: where the real data lives, CPU-only JAX, test images."""

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The configs read their datasets under $JAXFER_DATA (jaxfer.data.root);
# the tests read theirs there too. Unset, it is the development machines'
# data folder beside the repository, for this process and the subprocesses
# it starts.
DATA = pathlib.Path(
  os.environ.get("JAXFER_DATA")
  or pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
)
os.environ["JAXFER_DATA"] = str(DATA)
FER_DIR = DATA / "fer2013"
FER_FULL = FER_DIR / "fer2013.csv.bz2"
FER_SAMPLE = FER_DIR / "fer2013_sample_210.csv"
LFW = DATA / "lfw"


def need(path: pathlib.Path):
  """Skips (or, in CI, fails) when a real-data file is absent."""
  if not path.exists():
    if os.environ.get("CI"):
      pytest.fail(f"real data {path} is missing in CI")
    pytest.skip(
      f"real data {path} is absent (it ships beside the repo as "
      "$JAXFER_DATA; see the docs, Getting the data)"
    )
  return path


# Test images for the transforms, RandAugment and view tests.

MEAN3, STD3 = (0.5863, 0.4595, 0.4030), (0.2715, 0.2424, 0.2366)
STATS = {1: ((0.5,), (0.25,)), 3: (MEAN3, STD3)}


def face(h=48, w=48, c=1, seed=0):
  """A test image: a mid-range gradient plus noise, no value 0 or 128-only.

  Its range is inside [20, 220], so AutoContrast and Equalize change it, and
  it is asymmetric, so a flip changes it.
  """
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:h, :w]
  base = 20 + 150 * (x + 2 * y) / (w + 2 * h)
  img = base[..., None] + rng.integers(0, 50, (h, w, c))
  return img.astype(np.uint8)


def pil(img):
  return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def arr(im):
  a = np.asarray(im)
  return a[..., None] if a.ndim == 2 else a


def rng(seed=0):
  return np.random.default_rng(seed)


def config(name: str, variant: str = ""):
  """The shipped config `name:variant` by the one loader (`jaxfer.configs`)."""
  from jaxfer import configs  # pylint: disable=g-import-not-at-top

  return configs.load(f"{name}:{variant}" if variant else name)


# Subprocesses: the CLI runs and multi-device runs of the slow tier.


def cpu_env(devices: int | None = None, **extra) -> dict:
  """This process's environment with JAX on the CPU (`devices` host
  devices if given) and `extra` variables."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **extra}
  if devices is not None:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def python(*args, cwd=ROOT, devices=None, env=None, timeout=600):
  """`python *args` run to its end on the CPU (`cpu_env(devices)` plus
  `env`), its stdout and stderr captured as text."""
  return subprocess.run(
    [sys.executable, *map(str, args)],
    cwd=cwd,
    env={**cpu_env(devices), **(env or {})},
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )


def spawn(*args, cwd=ROOT, devices=None, out=None, err=subprocess.STDOUT):
  """`python *args` started on the CPU (`cpu_env(devices)`), stdout to
  `out` (an open file, or a pipe when None: then the caller must read it)
  and stderr to `err` (stdout's by default)."""
  return subprocess.Popen(
    [sys.executable, *map(str, args)],
    cwd=cwd,
    env=cpu_env(devices),
    stdout=subprocess.PIPE if out is None else out,
    stderr=err,
    text=True,
  )


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """The slow tier first: the two xdist workers start on the long tests
  and fill the end with short ones, instead of one worker finishing a
  four-minute test alone while the other idles."""
  longest = ("test_parallel.py", "test_notebooks.py", "test_bench.py")
  items.sort(
    key=lambda item: (
      item.get_closest_marker("slow") is None,
      not item.nodeid.startswith(tuple(f"tests/{m}" for m in longest)),
    )
  )
