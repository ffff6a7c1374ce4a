"""`python -m jaxfer.evaluate`: a trained workdir on its own test split
(the loop's figures again) and on a folder dataset whose classes are
spelled otherwise (explicit synonyms; unmapped names listed)."""

import json
import pathlib

import numpy as np
from PIL import Image
import pytest

from conftest import config
from conftest import python
from jaxfer import evaluate
from jaxfer.data import labels as labels_lib
from jaxfer.data.sources import synthetic
from jaxfer.loop import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  wd = tmp_path_factory.mktemp("evaluate") / "wd"
  c = config("default", "smoke")
  c.total_steps, c.checkpoint.every, c.eval_every = 4, 4, 4
  result = train.run(c, str(wd))
  return wd, c, result


def _folder(root, names, per_class=6):
  """A folder dataset of synthetic faces, class folders named `names`
  (in FER2013 order: names[i] holds faces of FER2013 class i)."""
  src = synthetic.SyntheticFaces(400, image_size=48, channels=1, seed=7)
  by_class = {i: [] for i in range(7)}
  for j in range(len(src)):
    item = src[j]
    if len(by_class[int(item["label"])]) < per_class:
      by_class[int(item["label"])].append(item["image"])
  for i, name in enumerate(names):
    d = root / "test" / name
    d.mkdir(parents=True)
    for k, img in enumerate(by_class[i]):
      Image.fromarray(np.asarray(img).squeeze(-1)).save(d / f"{k}.png")
  return root


def test_own_split_gives_the_loops_figures(trained, tmp_path):
  wd, c, result = trained
  summary, out = evaluate.run(str(wd), c, out=str(tmp_path / "out"))
  for name, m in summary["models"].items():
    for k in ("accuracy", "macro_f1", "mean_class_accuracy", "loss"):
      assert m[k] == pytest.approx(result[f"test/{name}/{k}"], abs=1e-6)
    cm = np.array(m["confusion"])
    assert cm.sum() == summary["examples"] == 64
    recall = [r["recall"] for r in m["per_class"].values()]
    np.testing.assert_allclose(recall, np.diag(cm) / cm.sum(1))
  assert (out / "metrics.json").exists()
  assert (out / f"confusion_{next(iter(summary['models']))}.png").exists()


def test_folder_with_synonyms_maps_by_name(trained, tmp_path):
  wd, c, _ = trained
  spelled = [
    "Anger",
    "disgusted",
    "fearful",
    "happiness",
    "sadness",
    "surprised",
    "neutral",
  ]
  root = _folder(tmp_path / "faces", spelled)
  c2 = c.copy_and_resolve_references()
  c2.data.source, c2.data.path = "image_folder", str(root)
  summary, _ = evaluate.run(str(wd), c2, split="test", out=str(tmp_path / "o"))
  assert summary["examples"] == 42 and summary["dropped_unmapped"] == 0
  m = next(iter(summary["models"].values()))
  # every class folder landed on its FER2013 class: support 6 each
  assert [r["support"] for r in m["per_class"].values()] == [6] * 7


def test_unmapped_class_names_are_listed(trained, tmp_path):
  wd, c, _ = trained
  root = _folder(
    tmp_path / "faces",
    ["angry", "disgust", "fear", "happy", "sad", "surprise", "confused"],
  )
  c2 = c.copy_and_resolve_references()
  c2.data.source, c2.data.path = "image_folder", str(root)
  with pytest.raises(ValueError, match=r"classes \['confused'\]"):
    evaluate.run(str(wd), c2, split="test", out=str(tmp_path / "o"))
  summary, _ = evaluate.run(
    str(wd), c2, split="test", drop_unmapped=True, out=str(tmp_path / "o")
  )
  assert summary["dropped_unmapped"] == 6 and summary["examples"] == 36


def test_synonyms_are_explicit_not_fuzzy():
  assert labels_lib.canonical(" Happiness ") == "happy"
  assert labels_lib.canonical("happpy") == "happpy"  # no guessing
  with pytest.raises(ValueError, match="happpy"):
    labels_lib.label_map(["happpy"], labels_lib.FER2013)


@pytest.mark.slow
def test_cli_writes_metrics_and_names_a_bad_field(trained, tmp_path):
  wd, _, _ = trained
  # A tuple field of the saved (JSON) config is set on the command line.
  cmd = [
    "-m",
    "jaxfer.evaluate",
    f"--workdir={wd}",
    f"--out={tmp_path / 'cli'}",
    "--config.data.eval_splits=('test',)",
  ]
  p = python(*cmd)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "accuracy" in p.stdout and "recall:" in p.stdout
  assert (
    json.loads((tmp_path / "cli" / "metrics.json").read_text())["examples"]
    == 64
  )
  p = python(*cmd, "--config.data.sourc=rafdb")
  assert p.returncode != 0 and "sourc" in p.stderr


def test_flip_tta_averages_the_probabilities_of_face_and_mirror():
  """tta_logits = log((softmax(f(x)) + softmax(f(mirror x))) / 2), numpy
  reference; a model that sees its input's first row as logits."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxfer.loop import evaluation  # pylint: disable=g-import-not-at-top

  apply = lambda v, x: (v * x[:, 0, :, 0], None)
  x = np.random.default_rng(0).normal(size=(3, 2, 5, 1)).astype(np.float32)
  got = evaluation.tta_logits(apply, 2.0, jnp.asarray(x), flip=True)
  soft = lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)
  want = np.log((soft(2 * x[:, 0, :, 0]) + soft(2 * x[:, 0, ::-1, 0])) / 2)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
  plain = evaluation.tta_logits(apply, 2.0, jnp.asarray(x), flip=False)
  np.testing.assert_allclose(np.asarray(plain), 2 * x[:, 0, :, 0], rtol=1e-6)
