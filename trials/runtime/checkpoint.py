"""A trial's resumable state in one folder: `state.pt` (everything) beside `model.pt` (the network alone).

`model.pt` is in the `spaces.save_checkpoint` format, with the genotype inside, so `trials.evaluate`
and later retrains can load it without knowing how it was trained.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch


def write_state(state: dict[str, Any], directory: Path | None = None) -> Path:
    """Write the state into `directory` (a fresh temporary folder when None) and return the folder."""
    directory = Path(directory or tempfile.mkdtemp(prefix="msinet-ckpt-"))
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(directory / "state.pt")
    return directory


def read_state(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "state.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as error:
        raise RuntimeError(f"cannot resume: checkpoint {path} is unreadable ({error})") from error
