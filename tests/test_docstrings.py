"""The examples in the public functions' docstrings run and print what they
show (and every public function has a docstring)."""
import doctest

import numpy as np
import pytest

import crossent
from crossent import _api


@pytest.mark.parametrize("name", crossent.__all__)
def test_public_functions_are_documented(name):
    obj = getattr(crossent, name)
    if callable(obj):
        assert obj.__doc__ and obj.__doc__.strip(), name


def test_docstring_examples_run_as_shown():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(_api, globs={"np": np, "crossent": crossent})
    assert sum(len(t.examples) for t in tests) >= 10
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
