"""platform/ is not a package (docs/architecture.md): its modules are imported from its folder, as launch.py does."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import group_alive

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "platform") not in sys.path:
    sys.path.append(str(ROOT / "platform"))


def run_launch(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python platform/launch.py ARGS` from the repository root, as a user types it."""
    return subprocess.run([sys.executable, "platform/launch.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def launch():
    return run_launch


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return tmp_path / "runs"


def kill_driver_when(args: list[str], env: dict, ready, timeout: float = 400) -> subprocess.Popen:
    """Start `python platform/launch.py ARGS` in a process group of its own, wait until `ready()` holds, then
    SIGKILL the driver alone (a crash: no handler runs, nothing is recorded) and wait for the local Ray
    instance it started to go with it; whatever of the group is left is stopped here, by its group id."""
    driver = subprocess.Popen([sys.executable, "platform/launch.py", *args], cwd=ROOT, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and driver.poll() is None and not ready():
            time.sleep(0.5)
        assert driver.poll() is None, f"the driver ended before the kill:\n{driver.stdout.read()[-3000:]}"
        assert ready(), "the launch never reached the point of the kill"
        driver.kill()
        driver.wait(30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and group_alive(driver.pid):
            time.sleep(0.5)
    finally:
        if group_alive(driver.pid):
            os.killpg(driver.pid, signal.SIGKILL)
    return driver


@pytest.fixture
def killed_launch():
    return kill_driver_when
