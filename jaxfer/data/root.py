"""The data root: one folder from which every config finds its datasets.

A config path that starts with ``$JAXFER_DATA`` (``$JAXFER_DATA/fer2013/
fer2013.csv``, ``$JAXFER_DATA/lfw``) is read under the folder the
environment variable `JAXFER_DATA` names, or `DEFAULT` where it is unset;
any other path is used as written (``~`` expanded). The layout under the
root and where each dataset comes from: the docs, Getting the data.
"""

import os
import pathlib

ENV = "JAXFER_DATA"
DEFAULT = "~/jaxfer_data"
PREFIX = "$" + ENV

# Where each dataset comes from, for the error of a missing one.
WHERE = {
  "fer2013": "FER2013 is Kaggle's 'Challenges in Representation Learning: "
  "Facial Expression Recognition Challenge' (fer2013.csv, in "
  "fer2013.tar.gz); put it at $JAXFER_DATA/fer2013/fer2013.csv",
  "unlabeled_folder": "LFW (a face pool) is 'lfw.tgz' of the University of "
  "Massachusetts' Labeled Faces in the Wild; extract it to $JAXFER_DATA/lfw",
  "rafdb": "RAF-DB is released by its authors on request (whdeng.cn/RAF); "
  "put its 'basic' folder at $JAXFER_DATA/rafdb",
  "affectnet": "AffectNet is released by its authors on request "
  "(mohammadmahoor.com/affectnet); put it at $JAXFER_DATA/affectnet",
  "affwild2": "Aff-Wild2 is released by the ABAW organisers on request; "
  "put its root at $JAXFER_DATA/affwild2",
}


def root() -> pathlib.Path:
  """The data root: $JAXFER_DATA, else `DEFAULT`."""
  return pathlib.Path(os.environ.get(ENV) or DEFAULT).expanduser()


def resolve(path: str) -> str:
  """`path` with a leading ``$JAXFER_DATA`` read as the data root and ``~``
  expanded. Under the root, a file that is absent as named but present
  compressed (``.gz``, ``.bz2``, which the CSV readers read) is that one."""
  if path != PREFIX and not path.startswith(PREFIX + "/"):
    return os.path.expanduser(path)
  out = str(root()) + path[len(PREFIX) :]
  if not os.path.exists(out):
    for suffix in (".bz2", ".gz"):
      if os.path.exists(out + suffix):
        return out + suffix
  return out


def missing(source: str, path: str, field: str) -> str:
  """The message for a dataset not found: the path, the field, the root
  and where to get the data."""
  where = WHERE.get(source, "")
  return (
    f"{source} data not found: {resolve(path)} ({field}={path}; "
    f"{PREFIX} is {root()})"
    + (f". {where}" if where else "")
    + "; see the docs, Getting the data"
  )
