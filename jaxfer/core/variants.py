"""The one parser of a config's variants: `--config NAME:a,b`.

A config file declares its variants once, as a module-level dict
`VARIANTS = {name: what it does}`, and its `get_config(arg)` starts with
`v = variants.parse(arg, VARIANTS)`; `v` is the set of names given
(`"vgg" in v`). Modelled on big_vision's `parse_arg`, without values:
every variant here is a switch. An unknown name is an error that lists the
declared ones with what they do, and the tests derive their cases from the
same declaration (`cases`), so a new variant is tested where it is
declared.
"""

from collections.abc import Mapping


def parse(arg: str, declared: Mapping[str, str]) -> frozenset[str]:
  """The variant names in `arg` ("a,b"; "" for none), each checked
  against `declared` ({name: help})."""
  given = [a.strip() for a in (arg or "").split(",") if a.strip()]
  unknown = sorted(set(given) - set(declared))
  if unknown:
    listed = "; ".join(f"{k}: {h}" for k, h in declared.items()) or "none"
    raise ValueError(
      f"unknown variant{'s' if len(unknown) > 1 else ''} "
      f"{', '.join(map(repr, unknown))}; this config's variants are: {listed}"
    )
  return frozenset(given)


def cases(declared: Mapping[str, str], combined: tuple = ()) -> list[str]:
  """The variant strings a config's tests build: none, each variant
  alone, each with `smoke` (where `smoke` is declared) and the config's
  `COMBINED` strings."""
  out = ["", *declared]
  if "smoke" in declared:
    out += [f"{k},smoke" for k in declared if k != "smoke"]
  return out + [c for c in combined if c not in out]
