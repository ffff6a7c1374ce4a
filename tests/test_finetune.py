"""Your own labels: `--config finetune` starts from the shipped model's
weights (every layer but a head of another class count), trains on a
folder of faces with a new class set, and `predict` answers with those
classes."""

import json

import jax
import numpy as np
from PIL import Image
import pytest

from conftest import config
from conftest import python
from jaxfer import zoo
from jaxfer.data.sources import synthetic
from jaxfer.loop import train

pytestmark = pytest.mark.slow

# Three classes of our own, drawn from synthetic faces of FER2013's angry,
# happy and neutral (indices 0, 3, 6).
CLASSES = {"tense": 0, "glad": 3, "calm": 6}


def _folder(root, per_class=4):
  src = synthetic.SyntheticFaces(300, image_size=64, channels=3, seed=5)
  seen = {k: 0 for k in CLASSES}
  for i in range(len(src)):
    item = src[i]
    for name, label in CLASSES.items():
      if int(item["label"]) == label and seen[name] < 2 * per_class:
        split = "train" if seen[name] < per_class else "test"
        d = root / split / name
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(item["image"]).save(d / f"{i}.png")
        seen[name] += 1
  return root


def test_finetune_a_new_class_set_from_the_shipped_weights(tmp_path, capsys):
  faces = _folder(tmp_path / "faces")
  c = config("finetune", "smoke")
  c.data.path, c.data.num_classes = str(faces), 3
  c.optimizer.lr = 1e-4  # the start stays visible after 4 steps
  result = train.run(c, str(tmp_path / "wd"))
  out = capsys.readouterr().out
  assert "7 classes -> 3: the head is re-initialised" in out
  assert "test/model/accuracy" in result

  shipped = zoo.load_shipped().variables["ema"]["params"]
  mine = zoo.load(str(tmp_path / "wd"))
  assert mine.class_names == ("calm", "glad", "tense")  # sorted folders
  params = next(iter(mine.variables.values()))["params"]
  # every layer but the head began as the shipped one's
  conv = lambda p: jax.tree.leaves(p["Conv_0"])[0]
  assert np.max(np.abs(np.asarray(conv(params)) - conv(shipped))) < 1e-2
  assert np.asarray(params["Dense_0"]["kernel"]).shape[-1] == 3

  # predict, by the CLI, on face crops of the new folder
  photos = sorted((faces / "test" / "glad").glob("*.png"))[:2]
  p = python(
    "-m",
    "jaxfer.predict",
    f"--workdir={tmp_path / 'wd'}",
    "--nodetect",
    "--json",
    *photos,
    cwd=tmp_path,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
  assert len(rows) == 2
  assert all(set(r["faces"][0]["classes"]) == set(CLASSES) for r in rows)
  # evaluate reads the run's latest checkpoint too (it chose no best one)
  p = python(
    "-m",
    "jaxfer.evaluate",
    f"--workdir={tmp_path / 'wd'}",
    "--split=test",
    f"--out={tmp_path / 'ev'}",
    cwd=tmp_path,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  got = json.loads((tmp_path / "ev" / "metrics.json").read_text())
  assert got["examples"] == 12 and got["class_names"] == sorted(CLASSES)
