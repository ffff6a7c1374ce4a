"""Sphinx configuration of jaxfer's documentation (MyST Markdown, the book
theme, API reference from docstrings, notebooks rendered, not executed).

  pip install -e ".[test]"      # includes the docs tools
  sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import pathlib
import shutil

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "jaxfer"
author = "the jaxfer developers"
copyright = "the jaxfer developers"  # noqa: A001  (Sphinx's name)

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.viewcode",
]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # rendered as committed, never run at build time
exclude_patterns = ["_build", "README.md"]
html_theme = "sphinx_book_theme"
html_title = "jaxfer"
html_theme_options = {
  "show_toc_level": 2,
  "use_download_button": False,
}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures already show them
autodoc_default_options = {"members": True, "undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # dataclass fields once, not twice


# The notebooks live at the top of the repository; they are copied here
# (ignored by git) so that Sphinx renders them beside the pages.
_NB = DOCS / "notebooks"
if _NB.exists():
  shutil.rmtree(_NB)
_NB.mkdir()
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
  shutil.copy(nb, _NB / nb.name)
