"""Sphinx configuration for the geonorm documentation.

Build from the repository root; any warning fails the build::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import sys
from pathlib import Path

# Document the working tree, whether or not geonorm is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geonorm  # noqa: E402

project = "geonorm"
author = "geonorm developers"
copyright = "geonorm developers"
release = geonorm.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",
]

# _tables holds Markdown fragments included by pages, not pages of their own.
exclude_patterns = ["_build", "_tables", "README.md", "**.ipynb_checkpoints"]

# autodoc / napoleon: NumPy-style docstrings, members in the order of __all__.
autodoc_default_options = {"member-order": "bysource"}
autosummary_generate = False  # summary tables only, no generated stub pages
napoleon_google_docstring = False
napoleon_numpy_docstring = True

# MyST (Markdown pages) and myst-nb (notebooks): notebooks are rendered with
# the outputs stored in them; executing them is CI's job, not the build's.
myst_enable_extensions = ["dollarmath"]
nb_execution_mode = "off"

html_theme = "furo"
html_title = f"geonorm {release}"
