"""Every example in the docstrings runs and answers what it shows."""

import doctest

import pytest

import mappy_python
from mappy_python import _mappy
from mappy_python import dask as mappy_dask

GLOBS = {name: getattr(mappy_python, name) for name in mappy_python.__all__}
OBJECTS = [getattr(_mappy, n) for n in _mappy.__all__ if not n.startswith("__")]
OBJECTS += [mappy_python, mappy_dask.build, mappy_dask.query]


def examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    for obj in OBJECTS:
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", "module"))
        for test in finder.find(obj, name, module=False, globs=dict(GLOBS)):
            if test.examples:
                yield test


TESTS = list(examples())


def test_every_public_class_and_method_has_an_example():
    documented = {t.name for t in TESTS}
    methods = ("insert", "query", "delete", "batch_insert", "batch_query", "merge", "save", "load", "stats")
    for method in methods:
        assert f"Maplet.{method}" in documented, method
    assert len(TESTS) >= 25


@pytest.mark.parametrize("test", TESTS, ids=[t.name for t in TESTS])
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL)
    result = runner.run(test)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {test.name}"
