"""Tests for jaxfer.data.transforms: conversion, resizing, crops, flips,
normalisation (against Pillow and numpy)."""

import numpy as np
from PIL import Image
import pytest

from conftest import MEAN3
from conftest import STATS
from conftest import STD3
from conftest import face
from conftest import pil
from conftest import rng
from jaxfer.data import transforms as T


def test_to_channels_matches_pillow():
  rgb = face(c=3, seed=1)
  grey = T.to_channels(rgb, 1)
  assert grey.shape == (48, 48, 1) and grey.dtype == np.uint8
  np.testing.assert_array_equal(grey[..., 0], np.asarray(pil(rgb).convert("L")))
  back = T.to_channels(grey, 3)
  assert back.shape == (48, 48, 3)
  np.testing.assert_array_equal(back, np.repeat(grey, 3, -1))
  assert T.to_channels(grey, 1) is grey


def test_resize_matches_pillow_and_noop():
  img = face(64, 80, 3)
  out = T.resize(img, 48)
  want = np.asarray(pil(img).resize((48, 48), Image.Resampling.BILINEAR))
  np.testing.assert_array_equal(out, want)
  assert T.resize(img, (32, 40)).shape == (32, 40, 3)
  g = face()
  assert T.resize(g, 48) is g


def test_center_crop():
  img = face(50, 60)
  out = T.center_crop(img, 48)
  np.testing.assert_array_equal(out, img[1:49, 6:54])
  with pytest.raises(ValueError):
    T.center_crop(img, 52)


def test_random_crop_identity_without_padding():
  img = face()
  np.testing.assert_array_equal(T.random_crop(img, 48, rng()), img)


@pytest.mark.parametrize("padding", [1, 4, 6, 47, 60])
def test_random_crop_reflect_equals_np_pad(padding):
  img = face(48, 40, 3)
  for seed in range(20):
    out = T.random_crop(img, (48, 40), rng(seed), padding=padding)
    r = rng(seed)
    p = np.pad(img, ((padding,) * 2, (padding,) * 2, (0, 0)), mode="reflect")
    top, left = r.integers(2 * padding + 1), r.integers(2 * padding + 1)
    np.testing.assert_array_equal(out, p[top : top + 48, left : left + 40])


def test_random_crop_constant_fill():
  img = np.full((8, 8, 1), 7, np.uint8)
  outs = [
    T.random_crop(img, 8, rng(s), padding=4, pad_mode="constant", fill=128)
    for s in range(20)
  ]
  assert all(set(np.unique(o)) <= {7, 128} for o in outs)
  assert any((o == 128).any() for o in outs)


def test_random_resized_crop():
  img = face(60, 50, 3)
  for s in range(10):
    out = T.random_resized_crop(img, 32, rng(s))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
  sq = face()
  full = T.random_resized_crop(sq, 48, rng(), scale=(1, 1), ratio=(1, 1))
  np.testing.assert_array_equal(full, sq)


def test_random_flip_mirrors_about_half():
  img = face()
  flips = 0
  for s in range(400):
    out = T.random_flip(img, rng(s))
    if np.array_equal(out, np.flip(img, 1)):
      flips += 1
    else:
      np.testing.assert_array_equal(out, img)
  assert 150 < flips < 250


def test_normalize_denormalize_round_trip():
  for c in (1, 3):
    img = face(c=c)
    mean, std = STATS[c]
    x = T.normalize(img, mean, std)
    assert x.dtype == np.float32 and x.shape == img.shape
    want = (img / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(T.denormalize(x, mean, std), img)
  with pytest.raises(ValueError):
    T.normalize(face(), MEAN3, STD3)
