"""Whether a path can hold a command's output, asked before any work: a file in the way or a folder that
cannot be written would otherwise fail minutes later, inside Ray, MLflow, the first checkpoint or the last
line of an export. Every command that writes (the launch's run folder, the trials' --out, trials.export,
trials.extract, analysis report, spaces.latency, the benchmarks) asks here. Imports nothing heavy."""

from __future__ import annotations

import os
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written; the message names the flag, the path and the way out."""


def folder_problem(folder: Path, create: bool = True) -> str | None:
    """What is wrong with `folder` as an output folder, or None. With `create` it is made and a file written
    and removed in it; without (a dry run) only what can be seen without writing is checked: a file in the
    way, or a nearest existing folder this user cannot write into."""
    folder = Path(folder).expanduser()
    # os.path.exists: a folder this user may not even look into reads as absent, its parent is then judged
    existing = next((p for p in (folder, *folder.parents) if os.path.exists(p)), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder; give a folder path"
    if not create:
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            return f"cannot write there ({existing} is not writable); give a folder you can write"
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        return f"cannot write there ({error.strerror or error}); give a folder you can write"
    return None


def file_problem(path: Path, create: bool = True) -> str | None:
    """What is wrong with `path` as an output file, or None: a folder there, a file that cannot be replaced,
    or a parent folder that cannot hold it (made, with `create`)."""
    path = Path(path).expanduser()
    if os.path.isdir(path):
        return f"{path} is a folder; give a file name"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"{path} exists and cannot be written; give another file name"
    problem = folder_problem(path.parent, create)
    return f"its folder cannot hold it: {problem}" if problem else None


def check_output(path: str | os.PathLike, flag: str, file: bool = False, create: bool = True) -> Path:
    """`path` as an output folder (or, with `file`, an output file), checked; raises OutputError naming `flag`."""
    path = Path(path).expanduser()
    problem = file_problem(path, create) if file else folder_problem(path, create)
    if problem:
        raise OutputError(f"{flag} {path}: {problem}")
    return path
