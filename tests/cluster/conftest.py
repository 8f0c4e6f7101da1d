"""One simulated cluster (tests/cluster/fake_cluster.py) for every test of this folder: starting it and
autoscaling it are the expensive part, so the tests share it, in file order."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "platform") not in sys.path:
    sys.path.append(str(ROOT / "platform"))

from tests.cluster import fake_cluster  # noqa: E402
from tests.processes import make_ray_token  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> fake_cluster.FakeCluster:
    token = make_ray_token(tmp_path_factory.mktemp("cluster-home"))
    started = fake_cluster.start(token)
    try:
        yield started
    finally:
        left = fake_cluster.stop(started)
        if not left:
            shutil.rmtree(started.temp, ignore_errors=True)
        assert not left, f"processes {left} of the simulated cluster survived teardown"
