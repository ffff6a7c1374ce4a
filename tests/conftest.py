"""Shared fixtures: where the real data lives, and CPU-only JAX."""

import os
import pathlib

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
FER_DIR = DATA / "fer2013"
FER_FULL = FER_DIR / "fer2013.csv.bz2"
FER_SAMPLE = FER_DIR / "fer2013_sample_210.csv"
LFW = DATA / "lfw"


def need(path: pathlib.Path):
  """Skips (or, in CI, fails) when a real-data file is absent."""
  if not path.exists():
    if os.environ.get("CI"):
      pytest.fail(f"real data {path} is missing in CI")
    pytest.skip(f"real data {path} is absent (it ships beside the repo as "
                "../shared/data; see README)")
  return path
