"""Run every docstring example of the installed galton packages."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import galton.connectors
import galton.quality

MODULES = sorted(
    {
        info.name
        for package in (galton.quality, galton.connectors)
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
    }
    | {"galton.quality", "galton.connectors"}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0
