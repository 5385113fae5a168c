"""The examples in the signatures package's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

from dspex_lab.signatures import signature

MODULES = ["", ".known", ".parse", ".resolve", ".spec", ".validate", ".schema", ".render",
           ".to_dspy"]


@pytest.mark.parametrize("suffix", MODULES)
def test_docstring_examples(suffix: str) -> None:
    module = importlib.import_module("dspex_lab.signatures" + suffix)
    result = doctest.testmod(module, extraglobs={"signature": signature})
    assert result.failed == 0
