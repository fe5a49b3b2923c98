"""Shared fixtures: devices (CUDA skipped where absent), dtypes, tolerances, real data sets."""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads sleep rather than spin (set before torch loads): on a shared,
# oversubscribed machine spinning teams make each parallel BLAS call wait for a
# descheduled thread (the suite ran 5x slower under load without it).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# rtol, atol of float32 / float64 comparisons
TOLERANCE = {torch.float32: (2e-4, 1e-5), torch.float64: (1e-9, 1e-12)}

CUDA_AVAILABLE = torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "cuda" in item.keywords and not CUDA_AVAILABLE:
            item.add_marker(skip_cuda)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Every test taking ``device`` runs on the CPU and, where present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def one_thread():
    """Small matrices on a loaded 2-core machine: one intra-op thread avoids OpenMP hand-off stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tol(dtype):
    rtol, atol = TOLERANCE[dtype]
    return dict(rtol=rtol, atol=atol)


def load_shared(name: str):
    """Load ``../shared/data/NAME`` with scipy, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data set {name} not found at {path} (the ../shared/data folder is absent)")
    import scipy.io

    return scipy.io.loadmat(path)


@pytest.fixture
def shared_data():
    return load_shared
