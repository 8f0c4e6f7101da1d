"""Launch records: unique ids claimed atomically, a lock that a live driver holds, and which launch --resume takes.

A launch's record is `RUN_DIR/launches/STUDY/LAUNCH.json`. Its id is the start time plus a random suffix,
claimed by creating the record with O_EXCL, so two launches started in the same second never share a
record, a Tune folder, an Optuna study or a parent run. The driver holds an exclusive `flock` on
`LAUNCH.lock` while it runs: the kernel releases it when the driver exits or is killed, so a record whose
lock is free belongs to a dead driver and can be resumed, and one whose lock is held cannot.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any


class LaunchError(RuntimeError):
    """A launch that cannot start or continue; the message says why and what to do."""


def claim_launch(folder: Path) -> tuple[str, Path]:
    """A fresh launch id and its (empty) record file, created atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        launch_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        path = folder / f"{launch_id}.json"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return launch_id, path
    raise LaunchError(f"could not claim a new launch id in {folder}")


class LaunchLock:
    """Held by the driver that runs a launch, for as long as it runs; the file names its pid and host."""

    def __init__(self, record: Path):
        self.path = Path(record).with_suffix(".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LaunchError(f"launch {self.path.stem} is running now (driver {holder}); wait for it to end, stop it "
                              f"with Ctrl-C, or start a new launch without --resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def refuse_if_running(self) -> None:
        """Refuse at once when a live driver holds the launch (the lock itself is taken when the run starts)."""
        if self.held_elsewhere():
            holder = self.path.read_text().strip() or "unknown"
            raise LaunchError(f"--resume: launch {self.path.stem} is still running (driver {holder}); a second "
                              "driver would run the same trials twice. Wait for it, stop it with Ctrl-C, or start "
                              "a new launch without --resume")

    def held_elsewhere(self) -> bool:
        """Whether another live process holds the lock (without taking it)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def save(launch: dict[str, Any]) -> None:
    """Written atomically: an interruption mid-write must not lose the record of finished phases."""
    path = Path(launch["state_file"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(launch, indent=2, default=str))
    tmp.replace(path)


def read_records(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every complete launch record of a study, oldest first (a record being claimed is still empty)."""
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return records


def record_status(path: Path, record: dict[str, Any]) -> str:
    """A record's status as it is: one that says running while no live driver holds its lock is interrupted
    (the driver was killed before it could say so), the verdict analysis.launch_state gives too."""
    status = str(record.get("status"))
    if status == "running" and not LaunchLock(path).held_elsewhere():
        return "interrupted"
    return status


def resumable(folder: Path, which: str, study: str) -> dict[str, Any]:
    """The launch --resume continues: the named one, or the latest unfinished one; refused while it runs."""
    records = read_records(folder)
    names = ", ".join(f"{p.stem} ({record_status(p, r)})" for p, r in records) or "none"
    if which != "latest":
        chosen = [(p, r) for p, r in records if p.stem == which]
        if not chosen:
            raise LaunchError(f"--resume {which}: study {study!r} has no such launch in {folder} (its launches: "
                              f"{names})")
        if chosen[0][1].get("status") == "finished":
            raise LaunchError(f"--resume {which}: that launch finished; nothing to continue (start a new launch "
                              "without --resume)")
    else:
        chosen = [(p, r) for p, r in records if r.get("status") != "finished"]
        if not chosen:
            raise LaunchError(f"--resume: study {study!r} has no unfinished launch in {folder} (its launches: "
                              f"{names}); start one without --resume")
    path, launch = chosen[-1]
    LaunchLock(path).refuse_if_running()
    return launch
