"""Sphinx configuration: MyST pages, the notebooks through myst-nb, the API reference from the
docstrings, and the book theme the JAX ecosystem's docs use.

A notebook stored with its outputs is rendered as stored (the test suite runs it and checks them
against the run, on one and two CPU devices); one stored without (its training is chaotic, see
tests/test_notebooks.py; its metadata sets myst-nb's execution mode) is executed here, and a failing cell or a warning in it fails the build."""

from __future__ import annotations

import pathlib
import re
import shutil

import lrjax

ROOT = pathlib.Path(__file__).resolve().parents[1]

project = "lrjax"
author = "the lrjax authors"
copyright = "2026, the lrjax authors"
release = lrjax.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]
myst_enable_extensions = ["dollarmath", "colon_fence"]
nb_execution_mode = "off"  # a notebook's metadata mystnb.execution_mode = "force" executes it
nb_execution_raise_on_error = True
nb_execution_timeout = 600  # seconds a cell may take
nb_output_stderr = "warn"  # with -W, a warning printed in a notebook fails the build
exclude_patterns = ["_build", "figures.py"]
suppress_warnings = ["mystnb.unknown_mime_type"]

autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # Attributes: as fields, not a second description beside autodoc's
napoleon_custom_sections = [("Keys", "params_style")]  # a TypedDict's keys, read as arguments
templates_path = ["_templates"]  # typeddict.rst: a TypedDict is documented by its keys, not dict's methods
default_role = "py:obj"  # `name` in a docstring links to the API reference where it can
nitpicky = False

html_theme = "sphinx_book_theme"
html_title = "lrjax"
html_theme_options = {"show_toc_level": 2}
html_static_path = ["_static"]
html_css_files = ["lrjax.css"]


def _copy_notebooks(app) -> None:
    """The notebooks live in notebooks/ (where Jupyter users open them); the site renders a
    copy in docs/notebooks/, made at each build."""
    target = pathlib.Path(app.srcdir) / "notebooks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(notebook, target / notebook.name)


def _plain_bars(app, what, name, obj, options, lines: list[str]) -> None:
    """The docstrings write norms and absolute values as |x|, which reStructuredText reads as a
    substitution: escape the bars outside inline code and examples."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith((">>>", "...")):
            continue
        parts = re.split(r"(``.*?``|`[^`]*`)", line)
        lines[i] = "".join(part if part.startswith("`") else part.replace("|", r"\|") for part in parts)


def setup(app) -> None:
    app.connect("builder-inited", _copy_notebooks)
    app.connect("autodoc-process-docstring", _plain_bars)
