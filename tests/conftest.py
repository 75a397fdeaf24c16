"""Shared fixtures: where the read-only shared data lives, and deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$SPIKEROBUST_SHARED_DATA`` or ``<repo>/../shared/data`` (never copied into the repo)."""
    env = os.environ.get("SPIKEROBUST_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def mitdb_dir() -> Path:
    path = shared_data_dir() / "mitdb"
    if not (path / "100.hea").exists():
        pytest.skip(f"MIT-BIH records not found at {path} (set SPIKEROBUST_SHARED_DATA)")
    return path


@pytest.fixture
def fsdd_dir() -> Path:
    path = shared_data_dir() / "fsdd" / "recordings"
    if not path.is_dir():
        pytest.skip(f"FSDD recordings not found at {path} (set SPIKEROBUST_SHARED_DATA)")
    return path


@pytest.fixture
def fmnist_dir() -> Path:
    for path in (Path("/usr/share/datasets/fashion-mnist"), Path(os.environ.get("FASHION_MNIST_DIR", "/nonexistent"))):
        if (path / "t10k-images-idx3-ubyte.gz").exists() or (path / "t10k-images-idx3-ubyte").exists():
            return path
    pytest.skip("Fashion-MNIST IDX files not found (Debian package dataset-fashion-mnist or $FASHION_MNIST_DIR)")


# One intra-op thread: these tests are small, CI machines have 2 cores, and some tests start
# worker processes; oversubscribed OpenMP threads can make a test 10-20x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
