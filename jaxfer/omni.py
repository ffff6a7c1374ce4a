r"""Command line: the omni-supervised pipeline, one stage after another.

  python -m jaxfer.omni --config configs/omni_fer2013.py \
      --workdir /tmp/jaxfer/omni

The config holds a full config per stage (`primitive`, `select`, `mined`,
`distill`, `distilled`; `config.stages` says which run). Each stage gets its
own sub-workdir; the pipeline fills in the paths that link them (the
primitive model for selection, the mined set for training and
distillation, the distilled set for the last training) and skips a stage
whose sub-workdir says it finished (``stage.json``). `omni.json` gathers
every stage's last evaluation and wall time.
"""

import json
import pathlib
import time

from absl import flags
import ml_collections

from jaxfer.core import cli
from jaxfer.core import xla_cpu
from jaxfer.loop import mine
from jaxfer.loop import runguard
from jaxfer.loop import train

STAGES = ("primitive", "select", "mined", "distill", "distilled")
_MARK = "stage.json"
# What a finished stage may be rerun with and still count as finished: how
# the run logs, reads data and uses the devices (not what it computes).
SAFE_TO_CHANGE = tuple(
  f
  for f in runguard.SAFE_TO_CHANGE
  if f not in ("total_steps", "checkpoint.every")
) + ("select.batch_size",)


def _define_flags():
  cli.config_flag(None, "An omni pipeline config (omni_fer2013).")
  cli.workdir_flag(None, "Where the stages' sub-workdirs go.")


def stage_config(config, name: str, workdir: pathlib.Path):
  """The resolved config of one stage, its links to earlier stages set."""
  c = config[name].copy_and_resolve_references()
  with c.unlocked():
    if name == "select":
      c.model_workdir = str(workdir / "primitive")
      return ml_collections.ConfigDict({"select": c})
    if name in ("mined", "distill"):
      c.data.mined.path = str(workdir / "select" / "mined")
    if name == "distilled":
      c.data.distilled.path = str(workdir / "distill" / "distilled")
  return c


def _as_json(config, name: str) -> dict:
  """The stage's own config as JSON, without the links `stage_config`
  adds (they name the workdir, which may be moved or copied)."""
  c = config[name].copy_and_resolve_references()
  c = {"select": c.to_dict()} if name == "select" else c.to_dict()
  return json.loads(json.dumps(c, default=str))


def _check_finished(name: str, d: pathlib.Path, done: dict, now) -> None:
  """A finished stage is skipped only when it ran with this config."""
  if "config" not in done:  # written before stages kept their config
    return
  changes = runguard.config_changes(done["config"], now, SAFE_TO_CHANGE)
  if changes:
    lines = "\n".join(f"  {k}: {a!r} -> {b!r}" for k, a, b in changes[:20])
    later = STAGES[STAGES.index(name) :]
    raise ValueError(
      f"stage {name} in {d} finished with another config; these fields "
      f"differ (then -> now):\n{lines}\nTo rerun it, delete {d} and the "
      f"sub-workdirs of the stages after it ({', '.join(later[1:])}) or "
      "use another --workdir"
    )


def run(config, workdir: str) -> dict:
  """Runs the stages in order; returns {stage: {"result", "wall_s"}}."""
  workdir = pathlib.Path(workdir).expanduser().absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  # `--config.stages=distill,distilled` arrives as one comma-joined entry
  stages = [s.strip() for x in config.stages for s in x.split(",") if s.strip()]
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f"config.stages has {unknown}; stages are {STAGES}")
  summary = {}
  for name in stages:
    d = workdir / name
    mark = d / _MARK
    c = stage_config(config, name, workdir)
    if mark.exists():
      done = json.loads(mark.read_text())
      _check_finished(name, d, done, _as_json(config, name))
      summary[name] = {k: done[k] for k in ("result", "wall_s")}
      print(f"jaxfer.omni: {name}: finished earlier, skipped", flush=True)
      continue
    print(f"jaxfer.omni: stage {name} -> {d}", flush=True)
    t0 = time.time()
    result = mine.run(c, str(d)) if name == "select" else train.run(c, str(d))
    summary[name] = {"result": result, "wall_s": time.time() - t0}
    mark.write_text(
      json.dumps(
        dict(summary[name], config=_as_json(config, name)),
        indent=2,
        default=float,
      )
    )
  (workdir / "omni.json").write_text(
    json.dumps(summary, indent=2, default=float)
  )
  for name, s in summary.items():
    r = s["result"]
    acc = {
      k: v
      for k, v in r.items()
      if k.startswith("PrivateTest/")
      and k.endswith(("/accuracy", "/macro_f1"))
      and not k.split("/")[-2].isdigit()
    }
    line = ", ".join(f"{k} {v:.4f}" for k, v in sorted(acc.items()))
    if name == "select":
      line = f"kept {sum(r['per_class'].values())} faces"
    print(f"  {name}: {line} ({s['wall_s'] / 60:.1f} min)", flush=True)
  return summary


def main(argv):
  cli.start(
    argv,
    "usage: python -m jaxfer.omni --config NAME|FILE --workdir DIR",
    "config",
    "workdir",
  )
  config = flags.FLAGS.config
  line = xla_cpu.configure(
    [config[s] for s in STAGES if s != "select" and s in config]
  )
  if line:
    print(f"jaxfer.omni: {line}", flush=True)
  try:
    run(config, flags.FLAGS.workdir)
  except (train.NonFiniteLoss, ValueError, FileNotFoundError) as e:
    cli.fail("jaxfer.omni", e)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
