"""The omni-supervised pipeline: its config, the links between stages, and
the smoke pipeline end to end on the FER2013 sample (a rerun skips the
finished stages)."""

import json

import pytest

from conftest import FER_SAMPLE
from conftest import config
from conftest import need
from jaxfer import omni


@pytest.mark.parametrize("variant", ["", "smoke", "lfw", "lfw,smoke", "tpu"])
def test_every_stage_config_is_complete(variant, tmp_path):
  c = config("omni_fer2013", variant)
  c.lock()
  c.data.path = "/data/fer2013.csv"
  c.seed = 3
  assert tuple(c.stages) == omni.STAGES
  for name in omni.STAGES:
    s = omni.stage_config(c, name, tmp_path)
    if name == "select":
      assert s.select.model_workdir == str(tmp_path / "primitive")
      assert s.select.pool.source == (
        "unlabeled_folder" if "lfw" in variant else "rest"
      )
      continue
    assert s.data.path == "/data/fer2013.csv" and s.seed == 3
    assert s.method == ("distill" if name == "distill" else "supervised")
  assert omni.stage_config(c, "mined", tmp_path).data.mined.path == str(
    tmp_path / "select" / "mined"
  )
  assert omni.stage_config(c, "distilled", tmp_path).data.distilled.path == str(
    tmp_path / "distill" / "distilled"
  )


def test_unknown_stage_is_an_error(tmp_path):
  c = config("omni_fer2013", "smoke")
  c.stages = ("primitive", "mine")
  with pytest.raises(ValueError, match=r"config.stages has \['mine'\]"):
    omni.run(c, str(tmp_path))
  c.stages = ("primitive,mine",)  # as --config.stages=a,b gives it
  with pytest.raises(ValueError, match=r"config.stages has \['mine'\]"):
    omni.run(c, str(tmp_path))


@pytest.mark.slow
def test_smoke_pipeline_trains_on_the_mined_set_and_skips_on_rerun(
  tmp_path, capsys
):
  need(FER_SAMPLE)
  c = config("omni_fer2013", "smoke")
  c.data.path = str(FER_SAMPLE)
  c.stages = ("primitive", "select", "mined")
  c.select.confidence = 0.0
  c.select.agree = False
  summary = omni.run(c, str(tmp_path))
  kept = sum(summary["select"]["result"]["per_class"].values())
  assert kept > 0
  data_log = (tmp_path / "mined" / "config.json").read_text()
  assert str(tmp_path / "select" / "mined") in data_log
  out = capsys.readouterr().out
  labeled = [line for line in out.splitlines() if "+mined(" in line]
  assert labeled, out  # the mined stage read labeled + mined
  assert all(
    0 <= summary[s]["result"]["PrivateTest/model/accuracy"] <= 1
    for s in ("primitive", "mined")
  )
  again = omni.run(c, str(tmp_path))
  assert "finished earlier, skipped" in capsys.readouterr().out
  assert json.loads(json.dumps(again, default=float)) == json.loads(
    (tmp_path / "omni.json").read_text()
  )
  # a finished stage rerun with a rule that changes its output is an error
  # naming the field (never its stale output reused), while a field that
  # changes only how it runs is not
  c.select.batch_size = 16
  omni.run(c, str(tmp_path))
  moved = tmp_path.parent / (tmp_path.name + "_moved")  # links follow it
  tmp_path.rename(moved)
  omni.run(c, str(moved))
  moved.rename(tmp_path)
  c.select.confidence = 0.5
  with pytest.raises(
    ValueError,
    match=r"stage select .*finished with "
    r"another config(.|\n)*select\.confidence: 0\.0 -> 0\.5"
    r"(.|\n)*delete .*select and the sub-workdirs of the "
    r"stages after it \(mined",
  ):
    omni.run(c, str(tmp_path))
