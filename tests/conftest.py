"""Shared fixtures: small synthetic datasets in the real on-disk layouts, generated once per session."""

from pathlib import Path

import pytest

from trials.data import synthesize


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run where CUDA is (`pytest -m cuda`, benchmarks/device_check.py) and skip elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Market-1501 (domain A) and VeRi-776 (domain B) layouts under one --data-dir."""
    root = tmp_path_factory.mktemp("reid-data")
    synthesize("market1501", root, ids=40, seed=0, domain="A")
    synthesize("veri", root, ids=12, seed=1, domain="B")
    return root
