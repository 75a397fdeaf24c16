"""Dataset tests never write into the user's cache: $SPIKEROBUST_CACHE points at a temporary folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path_factory.mktemp("spikerobust_cache")))
    yield
