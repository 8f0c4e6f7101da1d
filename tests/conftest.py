"""Shared fixtures: small synthetic datasets in the real on-disk layouts, generated once per session."""

from pathlib import Path

import pytest

from trials.data import synthesize


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """Market-1501 (domain A) and VeRi-776 (domain B) layouts under one --data-dir."""
    root = tmp_path_factory.mktemp("reid-data")
    synthesize("market1501", root, ids=40, seed=0, domain="A")
    synthesize("veri", root, ids=12, seed=1, domain="B")
    return root
