"""Small fakes for tests and examples: tiny sources and a linear model."""

import numpy as np

from jaxfer.data import labels
from jaxfer.data.sources import ArraySource


def tiny_source(n: int = 70, size: int = 8, channels: int = 1,
                num_classes: int = 7, seed: int = 0) -> ArraySource:
  """`n` random images whose first pixel encodes the row (for tracing)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 256
  return ArraySource(images, (np.arange(n) % num_classes).astype(np.int32),
                     labels.FER2013[:num_classes], name="tiny")


def noisy_view(item, rng):
  """A random transform that records its randomness in the output."""
  out = {"image": item["image"].astype(np.float32) / 255.0
                  + rng.normal(size=item["image"].shape).astype(np.float32)}
  if "label" in item:
    out["label"] = item["label"]
  return out


def pair_view(item, rng):
  return {"weak": noisy_view(item, rng)["image"],
          "strong": noisy_view(item, rng)["image"]}
