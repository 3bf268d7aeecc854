"""The examples in the docstrings of the population, sweep and plateau modules run as written."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["lrjax.population", "lrjax.sweep", "lrjax.plateau"])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)  # lrjax.sweep the attribute is the function
    outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted > 0 and outcome.failed == 0, outcome
