"""platform/ is not a package (docs/architecture.md): its modules are imported from its folder, as launch.py does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
