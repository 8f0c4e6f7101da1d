"""Whether a folder can hold a run's outputs, asked before any work: a file in the way or a folder that
cannot be written would otherwise fail minutes later, inside Ray, MLflow or the first checkpoint."""

from __future__ import annotations

import os
from pathlib import Path


def folder_problem(folder: Path, create: bool = True) -> str | None:
    """What is wrong with `folder` as an output folder, or None. With `create` it is made and a file written
    and removed in it; without (a dry run) only what can be seen without writing is checked."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder; give a folder path"
    if not create:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        return f"cannot write there ({error.strerror or error}); give a folder you can write"
    return None
