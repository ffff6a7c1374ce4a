"""Data parallelism: the same results on 1 device, a 4-device mesh, pmap,
shard_map and two processes; clear errors for indivisible batches.

Device counts are fixed when JAX starts, so each check runs in a fresh
process with XLA_FLAGS=--xla_force_host_platform_device_count=N.
"""

import json
import pathlib
import socket

import numpy as np
import pytest

from conftest import python
from conftest import spawn
from jaxfer.loop import testing

# Subprocesses, kills, notebooks or real runs: the slow tier.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python(code: str, devices: int, timeout=300, extra_env=None):
  return python("-c", code, devices=devices, env=extra_env, timeout=timeout)


_COMPARE = (
  "import json, sys; from jaxfer.loop import testing; "
  "print('RESULT' + json.dumps(testing.parallel_param_diffs("
  "int(sys.argv[1]), 2)))"
)


@pytest.mark.parametrize("part", [0, 1])
def test_one_device_mesh_pmap_and_shard_map_agree(part):
  """Supervised (GroupNorm, BatchNorm), Meta-Face2Exp's feedbacks,
  distillation (unroll, KRR) and DTM (FlexMatch's per-face buffer with
  negative learning): the whole state after 3 steps, thresholds and buffer
  included, 1 device vs 4. Half the cases per part, so the two test
  workers share them (one process each: XLA compiles on one thread)."""
  p = python("-c", _COMPARE, part, devices=4, timeout=900)
  assert p.returncode == 0, p.stderr[-3000:]
  out = json.loads(p.stdout.split("RESULT")[1])
  # Cases part, part + 2, ...: (paths + "moved") entries each.
  cases = testing.PARALLEL_CASES[part::2]
  assert len(out) == sum(len(paths) + 1 for _, _, paths, _ in cases)
  for key, diff in out.items():
    if key.endswith("moved"):
      assert diff > 1e-2, (key, out)  # the states really were trained
    else:
      assert diff < 2e-5, (key, diff, out)


def test_every_method_is_checked_on_the_mesh_path_and_pmap():
  from jaxfer import methods  # pylint: disable=g-import-not-at-top

  paths = {}
  for _, method, p, _ in testing.PARALLEL_CASES:
    paths.setdefault(method, set()).update(p)
  missing = {
    m: sorted({"mesh", "pmap"} - paths.get(m, set()))
    for m in methods.REGISTRY
    if not {"mesh", "pmap"} <= paths.get(m, set())
  }
  assert not missing, f"add PARALLEL_CASES in jaxfer/loop/testing.py: {missing}"


def test_indivisible_batch_is_a_clear_error(tmp_path):
  code = f"""
import sys
from jaxfer import configs
from jaxfer.loop import train
c = configs.load("default:smoke")
c.data.batch_size = 18
try:
  train.run(c, {str(tmp_path)!r})
except ValueError as e:
  print("ERROR", e)
"""
  p = _python(code, devices=4)
  assert "ERROR config.data.batch_size=18 does not divide over 4 devices" in (
    p.stdout
  ), p.stderr[-2000:]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


_RUN = """
import sys
from jaxfer import configs
from jaxfer.loop import train
c = configs.load("default:smoke")
c.total_steps, c.eval_every, c.checkpoint.every = 6, 6, 6
c.parallel.mode = sys.argv[1] if len(sys.argv) > 1 else "mesh"
if len(sys.argv) > 3:
  c.distributed.enabled = True
  c.distributed.coordinator_address = sys.argv[2]
  c.distributed.num_processes = 2
  c.distributed.process_id = int(sys.argv[3])
train.run(c, sys.argv[-1])
"""


def _params(workdir):
  import jax  # pylint: disable=g-import-not-at-top

  from jaxfer.loop import checkpoint  # pylint: disable=g-import-not-at-top

  tree = checkpoint.read_arrays(
    pathlib.Path(workdir) / "checkpoints" / "6" / "state"
  )
  return jax.tree.leaves(tree["net"]["params"])


def _spawn(args, devices, log):
  with open(log, "w") as f:
    return spawn("-c", _RUN, *args, devices=devices, out=f)


def test_two_processes_match_one_process_with_four_devices(tmp_path):
  ref = _spawn(["mesh", str(tmp_path / "one")], 4, tmp_path / "one.log")
  assert ref.wait(timeout=300) == 0, (tmp_path / "one.log").read_text()
  address = f"127.0.0.1:{_free_port()}"
  procs = [
    _spawn(
      ["mesh", address, str(i), str(tmp_path / "two")],
      2,
      tmp_path / f"p{i}.log",
    )
    for i in range(2)
  ]
  try:
    codes = [p.wait(timeout=300) for p in procs]
  finally:
    for p in procs:
      p.kill()
  logs = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
  assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert "writing to" in logs[0] and "writing to" not in logs[1]
  for a, b in zip(_params(tmp_path / "one"), _params(tmp_path / "two")):
    np.testing.assert_allclose(a, b, atol=1e-5)
  rows = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
  assert sum('"split": "test"' in r for r in rows) == 1  # process 0 only


def test_pmap_path_of_the_loop_matches_mesh(tmp_path):
  for mode in ("mesh", "pmap"):
    p = _spawn([mode, str(tmp_path / mode)], 4, tmp_path / f"{mode}.log")
    assert p.wait(timeout=300) == 0, (tmp_path / f"{mode}.log").read_text()
  for a, b in zip(_params(tmp_path / "mesh"), _params(tmp_path / "pmap")):
    np.testing.assert_allclose(a, b, atol=1e-5)
