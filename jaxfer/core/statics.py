"""A step's statics (a frozen dataclass) read from its config section.

A field of the statics is the config field of the same name: the section
is the one place that gives it a value, so no function between the two
renames a field or supplies a second default."""

import dataclasses


def from_section(cls, section, *, where: str, **given):
  """`cls` with every field not in `given` read from `section` (a config
  section, whose dotted name is `where`, for errors) under its own name.

  Raises:
    ValueError: naming the fields the section lacks.
  """
  names = [
    f.name for f in dataclasses.fields(cls) if f.init and f.name not in given
  ]
  missing = [n for n in names if n not in section]
  if missing:
    raise ValueError(
      f"{where} has no field {', '.join(missing)} "
      f"(the statics {cls.__name__} read them by name)"
    )
  return cls(**{n: section[n] for n in names}, **given)
