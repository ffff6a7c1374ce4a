"""`python -m jaxfer.summarize`: mean +- sample std of the last evaluation
of several workdirs (the docs' seed tables)."""

import json

import numpy as np
import pytest

from jaxfer import summarize


def _workdir(path, accs):
  path.mkdir()
  rows = [
    {
      "step": 500 * (i + 1),
      "split": "PrivateTest",
      "model": "model",
      "accuracy": a,
      "macro_f1": a / 2,
    }
    for i, a in enumerate(accs)
  ]
  rows.append({"step": 1000, "split": "train", "loss": 1.0})
  (path / "metrics.jsonl").write_text(
    "".join(json.dumps(r) + "\n" for r in rows)
  )
  return path


def test_mean_and_sample_std_of_the_last_evaluations(tmp_path):
  dirs = [
    _workdir(tmp_path / f"s{i}", [0.1, a])
    for i, a in enumerate((0.40, 0.44, 0.45))
  ]
  out = summarize.summarize(
    dirs, "PrivateTest", "model", ["accuracy", "macro_f1"]
  )
  want = np.array([0.40, 0.44, 0.45])
  assert out["accuracy"][0] == pytest.approx(want.mean())
  assert out["accuracy"][1] == pytest.approx(want.std(ddof=1))
  assert out["macro_f1"][0] == pytest.approx(want.mean() / 2)
  assert out["accuracy"][2] == 3 and out["steps"] == [1000]


def test_missing_split_or_metrics_are_clear_errors(tmp_path):
  d = _workdir(tmp_path / "a", [0.5])
  with pytest.raises(ValueError, match="no evaluation of model 'student'"):
    summarize.summarize([d], "PrivateTest", "student", ["accuracy"])
  with pytest.raises(FileNotFoundError, match="no metrics"):
    summarize.summarize([tmp_path], "PrivateTest", "model", ["accuracy"])


def test_cli_prints_one_line_and_defines_no_global_flags(tmp_path, capsys):
  from jaxfer import predict  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  dirs = [
    str(_workdir(tmp_path / f"s{i}", [a])) for i, a in enumerate((0.4, 0.5))
  ]
  summarize.main(["--metrics", "accuracy", *dirs])
  assert capsys.readouterr().out.strip() == (
    "accuracy 0.4500 +- 0.0707 (n = 2, step [500])"
  )


def test_a_torn_last_line_is_left_out_a_bad_middle_line_is_named(tmp_path):
  d = _workdir(tmp_path / "s", [0.3, 0.5])
  with open(d / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 1500, "split": "PrivateTest", "model": "mo')  # killed
  assert summarize.last_eval(d, "PrivateTest", "model")["accuracy"] == 0.5
  lines = (d / "metrics.jsonl").read_text().splitlines()
  lines.insert(1, "not json")
  (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not JSON"):
    summarize.last_eval(d, "PrivateTest", "model")
