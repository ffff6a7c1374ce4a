"""Meta-Face2Exp in the training loop: the smoke config end to end on the
real FER2013 sample (with a finetune stage), resume equality, LFW pool."""

import pathlib
import shutil

import jax
import numpy as np
import pytest

from conftest import FER_SAMPLE
from conftest import LFW
from conftest import config
from conftest import need
from jaxfer.core import report
from jaxfer.loop import checkpoint
from jaxfer.loop import train


def _config(variant="smoke"):
  c = config("face2exp_fer2013", variant)
  c.data.path = str(FER_SAMPLE)
  return c


def _state(workdir, step):
  return checkpoint.read_arrays(
    pathlib.Path(workdir) / "checkpoints" / str(step) / "state"
  )


@pytest.mark.slow
def test_smoke_trains_student_and_teacher_then_finetunes(tmp_path):
  need(FER_SAMPLE)
  config = _config()
  config.face2exp.feedback = "exact"
  config.face2exp.exact.unroll_steps = 2
  config.checkpoint.every = 2  # keeps steps 4 and 6
  result = train.run(config, str(tmp_path))
  for split in ("PublicTest", "PrivateTest"):
    for model in ("student", "teacher"):
      assert 0 <= result[f"{split}/{model}/accuracy"] <= 1
  rows = report.read_rows(tmp_path)
  train_rows = [r for r in rows if r["split"] == "train"]
  # Logged at steps 2, 3, 4 (meta) and 6 (mean of the finetune steps 5,
  # 6): each phase's rows hold its own metrics.
  assert [r["step"] for r in train_rows] == [2, 3, 4, 6]
  assert all(
    np.isfinite(r["l_new"]) and r["teacher_loss"] > 0 for r in train_rows[:3]
  )
  assert "teacher_loss" not in train_rows[3]
  assert train_rows[3]["finetune_lr"] > 0
  assert train_rows[3]["loss"] == train_rows[3]["student_loss"] > 0
  meta, tuned = _state(tmp_path, 4), _state(tmp_path, 6)
  moved = lambda net: any(
    np.any(a != b)
    for a, b in zip(
      jax.tree.leaves(meta[net]["params"]),
      jax.tree.leaves(tuned[net]["params"]),
    )
  )
  assert moved("student") and not moved("teacher")


@pytest.mark.slow
def test_resume_gives_identical_state(tmp_path):
  need(FER_SAMPLE)
  config = _config()
  config.face2exp.feedback = "score_function"  # randomness replays too
  train.run(config, str(tmp_path / "a"))
  train.run(config, str(tmp_path / "b"))
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "6")
  shutil.rmtree(tmp_path / "b" / "best")
  train.run(config, str(tmp_path / "b"))
  a, b = _state(tmp_path / "a", 6), _state(tmp_path / "b", 6)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_lfw_pool_feeds_the_unlabeled_stream(tmp_path):
  need(FER_SAMPLE)
  need(LFW)
  config = _config("smoke,lfw")
  config.data.unlabeled.path = str(LFW)
  config.total_steps, config.face2exp.finetune.steps = 2, 0
  config.eval_every = config.checkpoint.every = 2
  result = train.run(config, str(tmp_path))
  assert "PrivateTest/student/accuracy" in result
  log = (tmp_path / "metrics.jsonl").read_text()
  assert '"split": "train"' in log


def test_face2exp_without_unlabeled_data_is_a_clear_error(tmp_path):
  need(FER_SAMPLE)
  config = _config()
  config.mu = 0
  with pytest.raises(ValueError, match="config.mu > 0"):
    train.run(config, str(tmp_path))


def test_the_finetune_phase_follows_the_meta_phase():
  """`Method.stages` holds the two phases; the loop runs the one of the
  state's step (no `lax.cond`: XLA CPU runs convolutions in a conditional's
  branches many times slower). The meta phase moves the teacher; the
  finetune phase leaves it and trains the student alone."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxfer import methods  # pylint: disable=g-import-not-at-top
  from jaxfer.loop import testing

  c = config("face2exp_fer2013", "smoke")
  c.face2exp.finetune.steps = 2
  model = testing.tiny_model("batch", num_classes=7, dtype=jnp.float32)
  meth = methods.build(c, model, 6)
  (zero, meta), (first, tune) = meth.stages
  assert (zero, first) == (0, 4)
  with pytest.raises(ValueError, match="step_at"):
    _ = meth.step
  state = jax.jit(meth.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
  batch = {
    k: jnp.asarray(v, jnp.float32) if v.dtype != jnp.int32 else v
    for k, v in testing.tiny_meta_batch(
      labeled=4, unlabeled=4, num_classes=7
    ).items()
  }
  moved = lambda x, y: max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y))
  )
  # Before the switch the meta step, from it on the finetune step.
  for step, stage_fn, stage in (
    (0, meta, 0.0),
    (3, meta, 0.0),
    (4, tune, 1.0),
    (5, tune, 1.0),
  ):
    assert meth.step_at(step) is stage_fn
    s = state.replace(step=jnp.int32(step))
    a = jax.jit(meth.step_at(step))(s, batch, jax.random.key(1))
    # Whole networks (parameters and optimizer states: the warm-up's first
    # learning rate is 0).
    assert (moved(a[0].teacher, s.teacher) > 0) == (stage == 0)
    assert moved(a[0].student, s.student) > 0
    # Each phase's metrics are its own: the teacher's only in the meta one.
    assert ("teacher_loss" in a[1]) == (stage == 0)
    assert ("finetune_lr" in a[1]) == (stage == 1)
    assert meth.phase_at(step) == int(stage)
