"""Shared pytest fixtures. Tests run on CPU; GPU tests skip without CUDA."""

import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def shared_data():
    """Path of ../shared/data (real data nobody here wrote); skips if absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip(f"real data folder not found: {SHARED_DATA}")
    return SHARED_DATA


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
