"""Helpers for tests that start Ray nodes and servers as processes: each in its own process group, so that
teardown stops exactly what the test started (never `ray stop`, never a kill by name)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOGIN = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Ray token or MLflow login, plus `extra`."""
    drop = {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", *LOGIN}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def make_ray_token(home: Path) -> Path:
    """A cluster token made the way docs/studies.md tells users to: `ray get-auth-token --generate`, mode 600."""
    made = subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], env=clean_env(HOME=str(home)),
                          capture_output=True, text=True, timeout=60)
    token = home / ".ray" / "auth_token"
    assert made.returncode == 0 and token.is_file(), made.stderr
    token.chmod(0o600)
    assert len(token.read_text().strip()) >= 32
    return token


def start_group(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A process in its own process group, so that teardown can stop it and everything it spawned, and no more."""
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_group(process: subprocess.Popen, grace: float = 60) -> None:
    """SIGTERM to the process (`ray start --block` then stops its node in order), then to what is left of its
    group, then SIGKILL; returns when the group is gone."""
    for signal_group, sig, wait in ((False, signal.SIGTERM, grace), (True, signal.SIGTERM, 10),
                                    (True, signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig) if signal_group else process.send_signal(sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reaps the leader, whose zombie would keep the group alive
            if not group_alive(process.pid):
                return
            time.sleep(0.5)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def group_members(pgid: int) -> list[int]:
    """The processes of a process group (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:  # fields after "(comm)": state, ppid, pgrp
                members.append(int(entry.name))
    return members


def wait_for(predicate, what: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"{what} did not come up in {timeout:.0f}s:\n{log.read_text()[-3000:]}")
