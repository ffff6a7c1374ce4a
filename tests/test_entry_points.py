"""Every entry point that takes `--config` takes a shipped config by name
(with a variant), and a mistyped `--config.<field>` is one line naming it,
no traceback."""

import pytest

from conftest import python

pytestmark = pytest.mark.slow

CASES = (
  ("jaxfer.main", (), "default:smoke"),
  ("jaxfer.bench", ("meta",), "face2exp_fer2013:vgg"),
  ("jaxfer.select", (), "omni_fer2013:smoke"),
  ("jaxfer.omni", (), "omni_fer2013:lfw,smoke"),
)


@pytest.mark.parametrize("module,args,name", CASES, ids=[c[0] for c in CASES])
def test_a_config_by_name_and_a_mistyped_field(module, args, name, tmp_path):
  p = python(
    "-m", module, *args, "--config", name, "--config.seeed=1", cwd=tmp_path
  )
  assert p.returncode != 0
  assert "Traceback" not in p.stderr, p.stderr[-3000:]
  # the named config was loaded: its fields are what the typo is checked on
  line = p.stderr.strip().splitlines()[-1]
  assert line.startswith(f"{module}: error: --config.seeed=1: ")
  assert 'Did you mean "seed"' in line
  p = python("-m", module, *args, "--config", "no_such_config", cwd=tmp_path)
  assert p.returncode != 0 and "Traceback" not in p.stderr
  assert "face2exp_fer2013" in p.stderr  # the shipped names are listed
