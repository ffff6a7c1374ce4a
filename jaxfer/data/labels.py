"""Class-name tables of every dataset and explicit maps between label orders.

Every dataset keeps its own label order (see REFERENCE.md section 4). Names
are canonical lower-case words, so a map between two orders is computed by
name and never guessed: a class missing from the target is an error unless the
caller asks for it to become -1 explicitly.
"""

from collections.abc import Sequence

import numpy as np

# Each table in its dataset's label order.
FER2013 = tuple("angry disgust fear happy sad surprise neutral".split())
# FER+ vote columns in fer2013new.csv order (the last two are not classes).
FERPLUS = tuple(
  "neutral happy surprise sad angry disgust fear contempt".split()
)
FERPLUS_VOTE_COLUMNS = FERPLUS + ("unknown", "not_face")
# RAF-DB basic: file labels 1..7 are stored here as 0..6.
RAFDB = tuple("surprise fear disgust happy sad angry neutral".split())
AFFECTNET8 = tuple(
  "neutral happy sad surprise fear disgust angry contempt".split()
)
AFFECTNET7 = AFFECTNET8[:7]
ABAW_EXPR = tuple("neutral angry disgust fear happy sad surprise other".split())

TABLES = {
  "fer2013": FER2013,
  "ferplus": FERPLUS,
  "rafdb": RAFDB,
  "affectnet7": AFFECTNET7,
  "affectnet8": AFFECTNET8,
  "abaw_expr": ABAW_EXPR,
}


# Spellings of the canonical names seen in folder datasets and other
# tables. An explicit list, never a fuzzy match: a name neither canonical
# nor here stays unmapped, and the error lists it.
SYNONYMS = {
  "anger": "angry",
  "angry": "angry",
  "mad": "angry",
  "disgusted": "disgust",
  "disgust": "disgust",
  "fearful": "fear",
  "afraid": "fear",
  "scared": "fear",
  "fear": "fear",
  "happiness": "happy",
  "happy": "happy",
  "joy": "happy",
  "sadness": "sad",
  "sad": "sad",
  "surprised": "surprise",
  "surprise": "surprise",
  "neutral": "neutral",
  "neutrality": "neutral",
  "contemptuous": "contempt",
  "contempt": "contempt",
}


def canonical(name: str) -> str:
  """The canonical class name of a spelling (case and surrounding spaces
  ignored; `SYNONYMS`), or the lower-cased name itself when unknown."""
  key = name.strip().lower()
  return SYNONYMS.get(key, key)


def class_names(table: str) -> tuple[str, ...]:
  """Returns the class names of a named table, with a clear error."""
  if table not in TABLES:
    raise ValueError(f"unknown class table {table!r}; known: {sorted(TABLES)}")
  return TABLES[table]


def label_map(
  src: Sequence[str], dst: Sequence[str], *, missing_ok: bool = False
) -> np.ndarray:
  """Index map from label order `src` to label order `dst`, by class name
  (each side's names through `canonical`: "Happiness" meets "happy").

  Args:
    src: class names in the source order.
    dst: class names in the target order.
    missing_ok: map a source class absent from `dst` to -1 instead of raising.

  Returns:
    int32 array `m` with `m[i]` the index in `dst` of `src[i]`.
  """
  where = {canonical(name): i for i, name in enumerate(dst)}
  missing = [name for name in src if canonical(name) not in where]
  if missing and not missing_ok:
    raise ValueError(
      f"classes {missing} of {tuple(src)} have no counterpart in "
      f"{tuple(dst)} (spellings known: jaxfer.data.labels.SYNONYMS); pass "
      "missing_ok=True (drop_unmapped) to leave their rows out"
    )
  return np.array([where.get(canonical(name), -1) for name in src], np.int32)


def remap(labels: np.ndarray, mapping: np.ndarray) -> np.ndarray:
  """Applies `label_map` output to an array of labels (-1 stays -1)."""
  labels = np.asarray(labels)
  out = np.where(labels >= 0, mapping[np.clip(labels, 0, None)], -1)
  return out.astype(np.int32)
