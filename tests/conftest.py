"""Shared fixtures, once per test run (tests/README.md): small synthetic datasets in the real on-disk layouts,
the main job's launch that the tests reading a launch's records share, and the real servers (S3, PostgreSQL)
that the remote-store tests share."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Before torch is imported here and in every process the tests start (they inherit it): OpenMP threads that
# sleep when idle instead of spinning. Spinning threads of one process steal the cores the others need: on
# this 2-core machine, with a server or a cluster of the session running beside it, a small network's
# forward pass took 1.1 s instead of 0.015 s (tests/README.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from tests import scheduling  # noqa: E402
from trials.data import synthesize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--store-durations", action="store_true",
                     help="write each test file's seconds into tests/durations.json: the order `make test` starts "
                          "the files in, longest first (tests/scheduling.py)")


def pytest_configure(config):
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):  # xdist's controller only
        config.pluginmanager.register(scheduling.DurationRecorder(), "store-durations")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` run where CUDA is (`pytest -m cuda`, benchmarks/device_check.py) and skip elsewhere;
    the longest groups of files start first (tests/scheduling.py)."""
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if item.get_closest_marker("cuda"):
                item.add_marker(skip)
    scheduling.check_groups(items)
    scheduling.longest_first(items)


def pytest_xdist_make_scheduler(config, log):
    """`pytest -n 2` (`make test`): each group of files (tests/scheduling.py) to one worker."""
    from xdist.scheduler import LoadScopeScheduling

    class FileGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling.group_of(nodeid)

    return FileGroups(config, log)


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


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance (2 CPUs) for the tests that run Tune in this process and need no fresh one of
    their own (a launch starts its own: its instance is part of what it tests)."""
    import ray

    # the workers import the tests' modules, and with them the platform's (not a package: its folder)
    path = f"{ROOT}{os.pathsep}{ROOT / 'platform'}"
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass
class Launch:
    """A finished launch: the checkout-like folder it ran in, its run folder and what it printed."""

    folder: Path
    run_dir: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def smoke_launch(tmp_path_factory) -> Launch:
    """The main job, once per test run: the README deployment block's first line (`make run`'s command, the
    smoke study on a local Ray instance with synthetic data and SQLite stores under runs/), as written, in a
    checkout-like folder and a fresh shell's PATH. The tests that read what a launch records share it
    (test_study_e2e: runs, Optuna, the report; test_readme_commands: the rest of the deployment block);
    a test whose point is the launch itself (kill, resume, concurrency, a backend) runs its own."""
    from tests.readme import MAIN_JOB, checkout, deployment_script

    assert deployment_script().startswith(MAIN_JOB + "\n"), "the README's deployment block starts elsewhere"
    folder = tmp_path_factory.mktemp("checkout")
    checkout(folder)
    env = {**os.environ, "PYTHONPATH": str(folder), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", MAIN_JOB], cwd=folder, capture_output=True,
                            text=True, timeout=1800, env=env)
    return Launch(folder, folder / "runs", result)
