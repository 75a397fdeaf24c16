"""The docstring examples of the dataset modules run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "spikerobust.datasets",
    "spikerobust.datasets.cache",
    "spikerobust.datasets.collate",
    "spikerobust.datasets.ecg",
    "spikerobust.datasets.ecg_synthetic",
    "spikerobust.datasets.speech",
    "spikerobust.datasets.speech_commands",
    "spikerobust.datasets.images",
    "spikerobust.datasets.transforms",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
