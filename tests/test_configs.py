"""Every config file and variant loads, locks, and builds its model and
method; the configs of datasets absent here take one real step on random
batches."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfer import configs
from jaxfer import methods
from jaxfer import models
from jaxfer.core import variants
from jaxfer.data import build as data_build

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Every shipped config but omni's (a pipeline of several configs, its own
# tests: tests/test_omni.py); each config's cases from its VARIANTS.
NAMES = [n for n in configs.names() if n != "omni_fer2013"]
CASES = [(n, v) for n in NAMES for v in configs.cases(n)]


def _built(config):
  model = models.build(config.model, config.data.num_classes)
  size, ch = config.data.image_size, config.data.channels
  # No data read: the structure of distillation's real start.
  blank = data_build.blank_per_class_images(config.data)
  method = methods.build(
    config, model, config.total_steps, labeled_images=blank
  )
  return method, jax.eval_shape(
    method.init, jax.random.key(0), jnp.zeros((1, size, size, ch))
  )


@pytest.mark.parametrize("name,variant", CASES)
def test_config_builds(name, variant):
  mod = configs.module(name)
  assert f"--config {name}" in mod.__doc__  # the command, by name
  config = mod.get_config(variant)
  config.lock()
  with pytest.raises(AttributeError):
    config.not_a_field = 1
  _, state = _built(config)
  assert jax.tree.leaves(state)


@pytest.mark.parametrize("name", ["default", "face2exp_fer2013", "dtm_fer2013"])
def test_tpu_variant_scales_the_cpu_config(name):
  cpu, tpu = (configs.module(name).get_config(v) for v in ("", "tpu"))
  assert tpu.data.batch_size == 8 * cpu.data.batch_size
  assert tpu.optimizer.lr == pytest.approx(8**0.5 * cpu.optimizer.lr)
  assert tpu.total_steps == 5 * cpu.total_steps
  assert tpu.model.to_dict() == cpu.model.to_dict()
  assert tpu.total_steps % tpu.eval_every == 0


def test_unknown_variant_is_an_error_that_lists_the_declared_ones():
  with pytest.raises(ValueError, match="unknown variant 'smokey'.*vgg: "):
    configs.load("face2exp_fer2013:smoke,smokey")


def test_variant_cases_come_from_the_declaration():
  declared = {"smoke": "s", "a": "x", "b": "y"}
  assert variants.cases(declared, ("a,b",)) == [
    "",
    "smoke",
    "a",
    "b",
    "a,smoke",
    "b,smoke",
    "a,b",
  ]
  assert variants.parse(" a, smoke ", declared) == {"a", "smoke"}
  assert variants.parse("", declared) == frozenset()
  # A config's cases name only what it declares, and each one loads.
  assert set(",".join(configs.cases("dtm_fer2013")).split(",")) - {""} == set(
    configs.module("dtm_fer2013").VARIANTS
  )


def test_the_loader_takes_a_name_or_a_path_with_a_variant():
  by_name = configs.load("supervised_fer2013:vgg,10pct")
  by_path = configs.load(
    str(ROOT / "configs" / "supervised_fer2013.py:vgg,10pct")
  )
  assert by_name.to_dict() == by_path.to_dict()
  assert by_name.model.name == "vgg" and by_name.data.labeled_fraction == 0.1
  with pytest.raises(ValueError, match="no config file 'nope'"):
    configs.load("nope:smoke")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["face2exp_affectnet", "face2exp_rafdb"])
def test_configs_without_local_data_take_a_real_step(name):
  config = configs.module(name).get_config("smoke")
  config.optimizer.warmup_steps = 0  # lr > 0 at the first step
  method, _ = _built(config)
  size, ch = config.data.image_size, config.data.channels
  b, n = config.data.batch_size, config.data.batch_size * config.mu
  rng = np.random.default_rng(0)
  img = lambda k: rng.normal(size=(k, size, size, ch)).astype(np.float32)
  batch = {
    "image": img(b),
    "label": np.arange(b) % 7,
    "unlabeled_weak": img(n),
    "unlabeled_strong": img(n),
  }
  state = jax.jit(method.init)(
    jax.random.key(0), jnp.zeros((1, size, size, ch))
  )
  new, metrics = jax.jit(method.step)(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"])) and int(new.step) == 1
  moved = [
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(
      jax.tree.leaves(state.teacher.params), jax.tree.leaves(new.teacher.params)
    )
  ]
  assert max(moved) > 0


@pytest.mark.parametrize("name", NAMES)
def test_a_saved_config_comes_back_with_its_tuples(name):
  """A workdir's config.json read back (`defaults.from_json`) equals the
  config, tuples included: ml_collections overrides tuples from the command
  line, not the lists JSON gives."""
  import json  # pylint: disable=g-import-not-at-top

  from jaxfer.core import defaults  # pylint: disable=g-import-not-at-top
  from jaxfer.loop import runguard  # pylint: disable=g-import-not-at-top

  c = configs.module(name).get_config("")
  back = defaults.from_json(json.loads(c.to_json_best_effort()))
  assert back.to_dict() == c.to_dict()
  flat = lambda d: {k: type(v) for k, v in runguard.flatten(d).items()}
  assert flat(back.to_dict()) == flat(c.to_dict())


@pytest.mark.parametrize("name", configs.names())
def test_docstring_gives_command_expected_result_and_wall_time(name):
  """big_vision's convention: the config says how to run it, what it
  gives and how long it takes."""
  import ast  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top

  doc = ast.get_docstring(
    ast.parse((ROOT / "configs" / f"{name}.py").read_text())
  )
  assert re.search(rf"python -m jaxfer\.(main|omni) --config {name}\b", doc)
  assert "Expected" in doc
  assert re.search(r"\d+\s+(min|s|h)\b|hours|days", doc), "no wall time"
  assert "README" not in doc, "figures live in the docstring and the docs"


@pytest.mark.parametrize("preset", ["base", "vgg"])
def test_a_models_own_defaults_agree_with_its_config_section(preset):
  """One value per setting: where a network's dataclass gives a field a
  default, it is the value of its `config.model` section (the base
  config's ConvNet, the shipped VGG's preset)."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  from jaxfer.core import defaults  # pylint: disable=g-import-not-at-top
  from jaxfer.core import presets  # pylint: disable=g-import-not-at-top

  section = (
    dict(defaults.base().model)
    if preset == "base"
    else getattr(presets, preset)()
  )
  cls = {"convnet": models.ConvNet, "vgg": models.VGG}[section["name"]]
  own = {
    f.name: f.default
    for f in dataclasses.fields(cls)
    if f.default is not dataclasses.MISSING
  }
  for field, value in section.items():
    if field in own and field not in ("name", "dtype"):  # names of things
      assert own[field] == value, (cls.__name__, field, own[field], value)


def test_predicts_flags_are_the_detectors_defaults():
  """`python -m jaxfer.predict`'s detector flags default to what
  `jaxfer.detect.Finder` does without them."""
  import inspect  # pylint: disable=g-import-not-at-top

  from absl import flags  # pylint: disable=g-import-not-at-top

  from jaxfer import detect  # pylint: disable=g-import-not-at-top
  from jaxfer import predict  # pylint: disable=g-import-not-at-top

  if "min_face" not in flags.FLAGS:
    predict._define_flags()  # pylint: disable=protected-access
  finder = inspect.signature(detect.Finder).parameters
  for name in ("min_face", "margin", "detector"):
    assert flags.FLAGS[name].default == finder[name].default, name
