"""The meta-gradient benchmarks on tiny configs: every requested row is
measured, and the printed ratios are the ratios of the measured figures
(the docs' Benchmarks tables are read from these fields)."""

import math

import pytest

from conftest import config
from jaxfer.bench import distill
from jaxfer.bench import meta

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow


def test_bench_meta_rows_and_ratios():
  c = config("face2exp_fer2013", "smoke")
  c.data.image_size, c.model.depth = 16, 2
  out = meta.run(
    c,
    steps=1,
    ks=(1, 2),
    scan_ks=(),
    dtm_policies=("fixed", "flexmatch"),
    rounds=3,
  )
  rows = out["rows"]
  assert list(rows) == [
    "supervised",
    "first_order",
    "score_function",
    "exact_jvp",
    "exact K=1",
    "exact K=1 remat",
    "exact K=2",
    "exact K=2 remat",
    "dtm fixed",
    "dtm flexmatch",
  ]
  sup = rows["supervised"]
  b, mu = out["batch_size"], out["mu"]
  assert out["rounds"] == 3
  for name, r in rows.items():
    assert r["step_median_sec"] > 0 and r["memory_bytes"] > 0
    # the ratio is taken round by round: median and min-max of the rounds
    per_round = [
      a / s for a, s in zip(r["round_medians_sec"], sup["round_medians_sec"])
    ]
    assert len(per_round) == 3
    assert r["step_median_sec"] == pytest.approx(
      sorted(r["round_medians_sec"])[1]
    )
    assert r["time_ratio"] == pytest.approx(sorted(per_round)[1])
    assert r["time_ratio_spread"] == pytest.approx(
      {
        "min": min(per_round),
        "median": sorted(per_round)[1],
        "max": max(per_round),
      }
    )
    assert r["memory_ratio"] == pytest.approx(
      r["memory_bytes"] / sup["memory_bytes"]
    )
    if name.startswith("dtm"):
      assert r["unlabeled_per_step"] == b * mu
      fixed = rows["dtm fixed"]["round_medians_sec"]
      assert r["policy_overhead"] == pytest.approx(
        sorted(a / f - 1 for a, f in zip(r["round_medians_sec"], fixed))[1]
      )
      continue
    k = 2 if "K=2" in name else 1
    assert r["unlabeled_per_step"] == (
      0 if name == "supervised" else k * b * mu
    )
  # The unroll keeps K sets of activations: more memory at K = 2 than 1.
  assert rows["exact K=2"]["memory_bytes"] > rows["exact K=1"]["memory_bytes"]
  # XLA's FLOP counts: the exact feedback does work the first-order one
  # does not (a backward at the updated student and a JVP), and K = 2 more
  flops = {n: r["flops"] for n, r in rows.items()}
  assert flops["supervised"] < flops["first_order"] < flops["exact_jvp"]
  assert flops["exact K=1"] < flops["exact K=2"]
  assert out["exact_jvp_over_first_order_flops"] == pytest.approx(
    flops["exact_jvp"] / flops["first_order"]
  )
  spread = out["exact_jvp_over_first_order_spread"]
  per_round = [
    a / f
    for a, f in zip(
      rows["exact_jvp"]["round_medians_sec"],
      rows["first_order"]["round_medians_sec"],
    )
  ]
  assert out["exact_jvp_over_first_order"] == spread["median"]
  assert spread == pytest.approx(
    {
      "min": min(per_round),
      "median": sorted(per_round)[1],
      "max": max(per_round),
    }
  )
  assert spread["min"] <= spread["median"] <= spread["max"]


def test_bench_distill_scan_only_rows():
  out = distill.run(
    config("distill_fer2013", "smoke"),
    steps=1,
    ts=(2,),
    scan_ts=(2, 6),
    rounds=2,
  )
  rows = out["rows"]
  assert list(rows) == [
    "T=2 python",
    "T=2 python+remat",
    "T=2 scan+remat",
    "T=6 scan+remat",
  ]
  plain = out["plain_step"]["median_sec"]
  plain_rounds = out["plain_step"]["round_medians_sec"]
  assert plain == pytest.approx(sum(plain_rounds) / 2)  # median of two
  for r in rows.values():
    per_round = [
      a / (r["inner_steps"] * p)
      for a, p in zip(r["round_medians_sec"], plain_rounds)
    ]
    assert r["over_t_plain_spread"] == pytest.approx(
      {
        "min": min(per_round),
        "median": sum(per_round) / 2,
        "max": max(per_round),
      }
    )
    assert math.isfinite(r["median_sec"]) and r["memory_bytes"] > 0
  assert rows["T=6 scan+remat"]["inner_steps"] == 6


def test_bench_memory_only_has_no_times():
  out = distill.run(
    config("distill_fer2013", "smoke"), steps=0, ts=(), scan_ts=(2,)
  )
  r = out["rows"]["T=2 scan+remat"]
  assert math.isnan(r["median_sec"]) and r["memory_bytes"] > 0
  # what --out writes is strict JSON: not measured is null, never NaN
  import json  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxfer.bench import measure  # pylint: disable=g-import-not-at-top

  text = json.dumps(measure.strict_json(out), allow_nan=False)

  def reject(token):
    raise ValueError(f"non-strict JSON token {token}")

  back = json.loads(text, parse_constant=reject)
  assert back["rows"]["T=2 scan+remat"]["median_sec"] is None
  assert back["rows"]["T=2 scan+remat"]["memory_bytes"] == r["memory_bytes"]
  assert measure.strict_json(
    {"a": (np.float32(1.5), float("inf")), "b": np.int64(3)}
  ) == {"a": [1.5, None], "b": 3}


def test_bench_select_rows(tmp_path):
  """Both pool sizes are scored; the ratios are those of the figures."""
  import os  # pylint: disable=g-import-not-at-top

  from conftest import FER_SAMPLE  # pylint: disable=g-import-not-at-top
  from conftest import LFW  # pylint: disable=g-import-not-at-top
  from conftest import need  # pylint: disable=g-import-not-at-top
  from jaxfer.bench import select  # pylint: disable=g-import-not-at-top

  need(FER_SAMPLE)
  need(LFW)
  for name in sorted(os.listdir(LFW))[:20]:
    os.symlink(LFW / name, tmp_path / name)
  c = config("omni_fer2013", "lfw,smoke")
  c.data.path = str(FER_SAMPLE)
  c.select.pool.path = str(tmp_path)
  out = select.run(c, pool_size=300, forward_batches=2)
  small, big = out["passes"]
  assert big["faces"] == 300 and 0 < small["faces"] < 300
  for r in (small, big):
    assert r["images_per_sec"] == pytest.approx(r["faces"] / r["seconds"])
    assert r["pass_over_forward"] == pytest.approx(
      r["images_per_sec"] / out["forward_images_per_sec"]
    )
    assert r["score_table_bytes"] > 0
  assert out["forward_flops_per_face"] > 0 and out["input_images_per_sec"] > 0
  assert out["mscelebs_hours_at_pass_rate"] == pytest.approx(
    5.8e6 / big["images_per_sec"] / 3600
  )
