"""The shipped model: written from a workdir, loaded with its digests
checked, the same classifier as the workdir's; a damaged file is an error
naming it; the package's own model is intact, small and as good as its
card says on the real PrivateTest."""

import json
import pathlib
import shlex
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import FER_FULL
from conftest import config
from conftest import need
from conftest import python
from jaxfer import zoo
from jaxfer.data.sources import synthetic
from jaxfer.loop import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
FER2013_ORDER = tuple("angry disgust fear happy sad surprise neutral".split())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """A smoke workdir and the shipped pair written from it."""
  root = tmp_path_factory.mktemp("zoo")
  c = config("default", "smoke")
  c.total_steps, c.checkpoint.every, c.eval_every = 4, 4, 4
  train.run(c, str(root / "wd"))
  digests = zoo.write(
    str(root / "wd"),
    "tiny",
    model="model",
    folder=root / "zoo",
    metrics={"test": {"accuracy": 0.5}},
  )
  return root, digests


def _faces(n=5):
  src = synthetic.SyntheticFaces(n, image_size=48, channels=1, seed=3)
  return [src[i]["image"] for i in range(n)]


def test_the_shipped_pair_is_the_workdirs_classifier(written):
  root, digests = written
  shipped = zoo.load_shipped("tiny", folder=root / "zoo", digests=digests)
  own = zoo.load(str(root / "wd"), model="model")
  assert shipped.class_names == own.class_names
  # the command and code version the run recorded at its start
  started = json.loads((root / "wd" / "started.json").read_text())
  # (this test process's own command line: pytest's, or an xdist worker's)
  assert shipped.card["command"] == started["command"]
  assert started["command"] == shlex.join(["python", *sys.orig_argv[1:]])
  assert shipped.card["started"]["code"] == started["code"]
  assert shipped.card["preprocessing"]["size"] == 48
  # a face of another size goes through the same resize and normalisation
  faces = _faces() + [np.full((90, 70, 3), 100, np.uint8)]
  np.testing.assert_allclose(
    shipped.probabilities(faces, batch_size=4),
    own.probabilities(faces),
    atol=1e-6,
  )


def test_every_byte_is_checked_and_the_error_names_the_file(written, tmp_path):
  root, digests = written
  for name in ("tiny.msgpack", "tiny.json"):
    folder = tmp_path / name
    folder.mkdir()
    for f in (root / "zoo").iterdir():
      (folder / f.name).write_bytes(f.read_bytes())
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(zoo.IntegrityError, match=rf"{folder / name}.*damaged"):
      zoo.load_shipped("tiny", folder=folder, digests=digests)
  with pytest.raises(zoo.IntegrityError, match="no released SHA-256"):
    zoo.load_shipped("tiny", folder=root / "zoo", digests={})
  with pytest.raises(FileNotFoundError, match="no shipped model 'nope'"):
    zoo.load_shipped("nope")


def test_select_names_the_models():
  m = zoo.Model(
    "x", config("default", "smoke"), ("a",), {"model": 1, "ema": 2}, None, {}
  )
  assert list(m.select().variables) == ["model"]
  assert m.select("ema").variables == {"ema": 2}
  with pytest.raises(
    ValueError,
    match=r"'teacher' is not one of \['ema', "
    r"'model'\]",
  ):
    m.select("teacher")


def test_the_packaged_model_is_intact_small_and_described():
  files = {
    p.name: p for p in zoo.HERE.iterdir() if p.suffix in (".json", ".msgpack")
  }
  assert set(files) == set(zoo.SHA256), "a shipped file without a digest"
  for name, path in files.items():
    assert zoo.sha256(path) == zoo.SHA256[name], name
  assert files[f"{zoo.DEFAULT}.msgpack"].stat().st_size <= 10 * 2**20
  m = zoo.load_shipped()
  assert m.class_names == FER2013_ORDER
  d = m.config.data
  assert (d.image_size, d.channels) == (48, 1)
  assert m.card["preprocessing"]["mean"] == list(d.mean)
  assert m.card["command"].startswith("python -m jaxfer.main --config ")
  assert m.card["terms"] == zoo.TERMS
  for split in ("PublicTest", "PrivateTest"):
    assert set(m.card["metrics"][split]) == {"plain", "flip"}
  n = sum(
    int(np.size(p))
    for p in __import__("jax").tree.leaves(
      m.variables[m.card["model"]]["params"]
    )
  )
  assert n == m.card["parameters"]


@pytest.mark.slow
def test_evaluate_with_no_workdir_reproduces_the_card_on_privatetest(tmp_path):
  need(FER_FULL)
  p = python(
    "-m",
    "jaxfer.evaluate",
    "--split=PrivateTest",
    f"--config.data.path={FER_FULL}",
    f"--out={tmp_path / 'out'}",
    cwd=tmp_path,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  got = json.loads((tmp_path / "out" / "metrics.json").read_text())
  assert got["examples"] == 3589
  (m,) = got["models"].values()
  card = zoo.load_shipped().card["metrics"]["PrivateTest"]["plain"]
  for k in ("accuracy", "mean_class_accuracy", "macro_f1"):
    assert m[k] == pytest.approx(card[k], abs=1e-4), k
    low, high = m["interval95"][k]
    assert low < m[k] < high and high - low < 0.06, k
  # the faces whose pixels equal a Training face's, counted and left out
  n = got["also_in_training"]
  w = m["without_training_copies"]
  assert 0 < n < 3589 and w["examples"] == 3589 - n
  assert f"the {n} faces also in Training left out" in p.stdout
  assert abs(w["accuracy"] - m["accuracy"]) < 0.05


@pytest.mark.slow
def test_predict_with_no_workdir_uses_the_shipped_model(tmp_path):
  paths = []
  for i, img in enumerate(_faces(3)):
    paths.append(str(tmp_path / f"f{i}.png"))
    Image.fromarray(img[..., 0]).save(paths[-1])
  p = python(
    "-m",
    "jaxfer.predict",
    "--no-detect",
    "--top=7",
    "--json",
    *paths,
    cwd=tmp_path,
  )
  assert p.returncode == 0, p.stderr[-3000:]
  probs = zoo.load_shipped().probabilities(_faces(3))
  recs = [json.loads(line) for line in p.stdout.splitlines()]
  for rec, pr in zip(recs, probs, strict=True):
    (face,) = rec["faces"]
    got = [face["classes"][c] for c in FER2013_ORDER]
    np.testing.assert_allclose(got, pr, atol=1e-4)
