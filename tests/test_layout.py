"""The package's floors: no module imports a module on a floor above its own.

Every module of `jaxfer/` is placed on a floor (a new module that is not
fails here, so its author decides where it lives); a module may import the
modules of lower floors and of its own package, nothing above. Imports
inside functions count too.
"""

import ast
import pathlib
import re

import pytest

from jaxfer import methods

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Bottom to top, as the docs' Layout page draws them. Every floor
# below the entry points is made of packages, so the folder tree is the
# drawing; the modules directly in jaxfer/ are the commands (and the
# notebooks' helpers).
FLOORS = (
  ("leaves", ("jaxfer.core",)),
  ("data and models", ("jaxfer.data", "jaxfer.models")),
  ("engines", ("jaxfer.meta", "jaxfer.mining")),
  ("methods", ("jaxfer.methods",)),
  ("the loops and their guards", ("jaxfer.loop",)),
  ("inference: shipped models, detectors", ("jaxfer.zoo", "jaxfer.detect")),
  (
    "entry points",
    (
      "jaxfer.main",
      "jaxfer.predict",
      "jaxfer.bench",
      "jaxfer.summarize",
      "jaxfer.select",
      "jaxfer.omni",
      "jaxfer.notebook",
      "jaxfer.evaluate",
      "jaxfer.export",
    ),
  ),
)
MAX_TOP_LEVEL_MODULES = 8


def _unit(module: str):
  """(floor index, unit) of a jaxfer module: its floor and the entry of
  FLOORS it belongs to (a package or a module)."""
  for floor, (_, units) in enumerate(FLOORS):
    for unit in units:
      if module == unit or module.startswith(unit + "."):
        return floor, unit
  return None


def _modules():
  for path in sorted((ROOT / "jaxfer").rglob("*.py")):
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    yield ".".join(parts), path


def _imports(path: pathlib.Path, module: str):
  """(line, imported jaxfer module) of every import in the file."""
  package = module if path.name == "__init__.py" else module.rpartition(".")[0]
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
      # `from jaxfer.x import y` imports jaxfer.x.y when y is a module.
      names = [
        f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
        for a in node.names
      ]
    else:
      continue
    for name in names:
      if name == "jaxfer" or name.startswith("jaxfer."):
        yield node.lineno, name


def _is_module(name: str) -> bool:
  rel = ROOT.joinpath(*name.split("."))
  return rel.with_suffix(".py").exists() or (rel / "__init__.py").exists()


def test_every_module_has_a_floor():
  unplaced = [m for m, _ in _modules() if m != "jaxfer" and _unit(m) is None]
  assert not unplaced, (
    f"modules on no floor (add them to FLOORS in {__file__}): {unplaced}"
  )


def test_floors_below_the_entry_points_are_packages():
  for name, units in FLOORS[:-1]:
    for unit in units:
      folder = ROOT.joinpath(*unit.split("."))
      assert (folder / "__init__.py").exists(), (
        f"{unit} (floor {name!r}) is not a package"
      )


def test_the_top_level_holds_only_entry_points():
  top = sorted(p.stem for p in (ROOT / "jaxfer").glob("*.py"))
  entry = {u.split(".")[1] for u in FLOORS[-1][1]}
  assert len(top) <= MAX_TOP_LEVEL_MODULES, top
  assert set(top) - {"__init__"} <= entry, (
    f"modules directly in jaxfer/ that are not entry points: "
    f"{sorted(set(top) - {'__init__'} - entry)}"
  )


def test_no_module_imports_from_a_higher_floor():
  bad = []
  for module, path in _modules():
    if module == "jaxfer":
      continue
    floor, unit = _unit(module)
    for line, target in _imports(path, module):
      if target == "jaxfer":
        continue
      placed = _unit(target)
      assert placed is not None, f"{path}:{line} imports unknown {target}"
      t_floor, t_unit = placed
      if t_unit != unit and t_floor >= floor:
        bad.append(
          f"{path.relative_to(ROOT)}:{line}: {module} "
          f"({FLOORS[floor][0]}) imports {target} "
          f"({FLOORS[t_floor][0]})"
        )
  assert not bad, "imports from the same or a higher floor:\n" + "\n".join(bad)


def test_meta_engines_know_nothing_of_methods_or_the_loop():
  for module, path in _modules():
    if module.startswith("jaxfer.meta"):
      for line, target in _imports(path, module):
        assert not target.startswith(("jaxfer.methods", "jaxfer.loop.train")), (
          f"{path}:{line} imports {target}"
        )


@pytest.mark.parametrize("method", sorted(methods.REGISTRY))
def test_each_method_lives_in_the_module_of_its_config_name(method):
  build = methods.REGISTRY[method]
  assert build.__module__ == f"jaxfer.methods.{method}"
  assert (ROOT / "jaxfer" / "methods" / f"{method}.py").exists()


def test_the_rule_catches_an_upward_import(tmp_path):
  """The checker itself: a meta module importing a method is reported."""
  fake = tmp_path / "m.py"
  fake.write_text(
    "from jaxfer.methods import face2exp\n"
    "def f():\n  import jaxfer.loop.train\n"
  )
  found = [t for _, t in _imports(fake, "jaxfer.meta.m")]
  assert found == ["jaxfer.methods.face2exp", "jaxfer.loop.train"]
  assert _unit("jaxfer.meta.m")[0] < _unit(found[0])[0]


_IMPORT_ALL = """
import importlib, sys
from absl import flags
failed = []
for name in sys.argv[1:]:
  try:
    importlib.import_module(name)
  except Exception as e:  # pylint: disable=broad-except
    failed.append(f"{name}: {type(e).__name__}: {e}")
assert not failed, "imports failed:\\n" + "\\n".join(failed)
ours = {m: [f.name for f in fs] for m, fs in
        flags.FLAGS.flags_by_module_dict().items() if m.startswith("jaxfer")}
assert not ours, f"importing jaxfer defined global flags: {ours}"
"""


def test_every_module_imports_in_one_process_and_defines_no_flags():
  # An entry point's flags are defined when it runs as a program, never on
  # import: two of them in one process (a test worker, a notebook) would
  # both define --workdir (CI of stop 20 failed on exactly that).
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  names = [m for m, _ in _modules()]
  p = subprocess.run(
    [sys.executable, "-c", _IMPORT_ALL, *names],
    capture_output=True,
    text=True,
    check=False,
    cwd=ROOT,
  )
  assert p.returncode == 0, p.stderr[-3000:]


_CONFIG_GET = re.compile(r"\b(config|cfg|ucfg|pcfg|sel)(\.\w+)*\.get\(")


def test_no_config_field_is_read_with_a_fallback_default():
  """Every field is defined once, in jaxfer/core/defaults.py; code reads it
  as it is (`config.data.path`), never `config.get("path", "")`, which
  would hide a second default from the locked config."""
  bad = [
    f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
    for _, path in _modules()
    for i, line in enumerate(path.read_text().splitlines(), 1)
    if _CONFIG_GET.search(line)
  ]
  assert not bad, "config fields read with a fallback:\n" + "\n".join(bad)


def test_the_fallback_rule_catches_one():
  assert _CONFIG_GET.search('mu = config.get("mu", 0)')
  assert _CONFIG_GET.search('x = cfg.pool.get("on_bad", "error")')
  assert not _CONFIG_GET.search('os.environ.get("JAXFER_DATA")')


def test_no_code_points_to_a_readme_section():
  """The README is the short front page: explanations live in the docs,
  so no message, docstring or comment of the package, configs or
  notebooks sends a reader to a README section."""
  paths = [
    *(ROOT / "jaxfer").rglob("*.py"),
    *(ROOT / "configs").glob("*.py"),
    *(ROOT / "notebooks").glob("*.ipynb"),
  ]
  found = [str(p) for p in paths if "README" in p.read_text()]
  assert not found, found
