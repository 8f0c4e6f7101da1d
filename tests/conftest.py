"""Shared fixtures, once per session: small synthetic datasets in the real on-disk layouts, and the real servers
(S3, PostgreSQL) that the remote-store tests share."""

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


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server for the session (tests/servers.py); each test makes its own bucket."""
    from tests.servers import start_s3

    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL 15 cluster for the session (tests/servers.py); each test makes its own database."""
    from tests.servers import start_postgres

    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
