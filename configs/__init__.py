"""The experiment configs, shipped in the package as `jaxfer.configs`.

Each module's `get_config(variant)` returns an `ml_collections.ConfigDict`;
`python -m jaxfer.main --config NAME[:VARIANT]` finds one by name
(`--config face2exp_fer2013:smoke`), or by path
(`--config configs/face2exp_fer2013.py:smoke`). Every config's docstring
gives its command, its expected result and its wall time, and its
`VARIANTS` declare what each `:variant` does (`jaxfer.core.variants`).

`load("NAME[:VARIANT]")` is the one loader of the CLI's entry points, the
notebooks, the benchmarks and the tests.
"""

import importlib.resources
import importlib.util
import os

FOLDER = importlib.resources.files(__name__)


def names() -> list[str]:
  """The configs that ship with jaxfer."""
  return sorted(
    p.name[:-3]
    for p in FOLDER.iterdir()
    if p.name.endswith(".py") and not p.name.startswith("_")
  )


def resolve(arg: str) -> str:
  """`NAME[:VARIANT]` as the path of the shipped config file (with the
  variant); a path to an existing file is returned as it is. An unknown
  name is a ValueError that lists the shipped ones."""
  name, sep, variant = arg.partition(":")
  if os.path.exists(name) or name.endswith(".py") or os.sep in name:
    return arg
  if name not in names():
    raise ValueError(
      f"--config {arg}: no config file {name!r} and no "
      f"shipped config of that name (shipped: "
      f"{', '.join(names())})"
    )
  return str(FOLDER / f"{name}.py") + sep + variant


def module(arg: str):
  """The config module of `NAME` or of a config file's path (a variant
  after `:` is ignored), loaded from its file as the CLI loads it."""
  path = resolve(arg).partition(":")[0]
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--config {arg}: no config file {path}")
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"jaxfer_config_{name}", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def load(arg: str):
  """`get_config(variant)` of `NAME[:VARIANT]` or `path.py[:VARIANT]`,
  exactly what `--config arg` gives the CLI (before `--config.field`
  overrides)."""
  variant = resolve(arg).partition(":")[2]
  return module(arg).get_config(variant)


def cases(name: str) -> list[str]:
  """The variant strings the tests build for config `name`: from its
  `VARIANTS` (and `COMBINED`) declaration."""
  from jaxfer.core import variants  # pylint: disable=g-import-not-at-top

  mod = module(name)
  return variants.cases(mod.VARIANTS, getattr(mod, "COMBINED", ()))


def argv(args: list[str]) -> list[str]:
  """A command line with its `--config NAME` values resolved to files (an
  unknown name exits with the list of shipped ones)."""
  out, it = [], iter(args)
  try:
    for a in it:
      if a == "--config":
        out += [a, _checked(next(it, ""))]
      elif a.startswith("--config="):
        out.append("--config=" + _checked(a.split("=", 1)[1]))
      else:
        out.append(a)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from e
  return out


def _checked(arg: str) -> str:
  """`resolve(arg)`, its variant checked against the file's `VARIANTS`
  (an unknown one is one line listing them, not a traceback)."""
  from jaxfer.core import variants  # pylint: disable=g-import-not-at-top

  path = resolve(arg)
  if os.path.isfile(path.partition(":")[0]):
    declared = getattr(module(path), "VARIANTS", None)
    if declared is not None:
      try:
        variants.parse(path.partition(":")[2], declared)
      except ValueError as e:
        raise ValueError(f"--config {arg}: {e}") from e
  return path
