"""What a dataset is, person or vehicle, known without loading its images (the input width depends on it).

A list folder says so in an optional `dataset.json` (`{"kind": "vehicle"}`); a loader written in Python by
its `kind` attribute; the built-in layouts by their name. Persons and vehicles never train together.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trials.data.datasets import DATASETS, DatasetError
from trials.dataset_names import LIST_PREFIX, list_folder, source_names

KIND_FILE = "dataset.json"  # optional, in a list folder: {"kind": "person" | "vehicle"}
KINDS = ("person", "vehicle")
_BUILTIN_KINDS = {"veri": "vehicle", "vehicleid": "vehicle"}


def list_kind(folder: Path) -> str:
    """`person` unless the folder's dataset.json says `{"kind": "vehicle"}`."""
    marker = folder / KIND_FILE
    if not marker.is_file():
        return "person"
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DatasetError(f"{marker}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or set(meta) - {"kind"} or meta.get("kind", "person") not in KINDS:
        raise DatasetError(f"{marker}: expected {{\"kind\": \"person\"}} or {{\"kind\": \"vehicle\"}}, got {meta!r}")
    return meta.get("kind", "person")


def source_kind(part: str, data_dir: str | os.PathLike) -> str:
    """person or vehicle, without loading the images (the network's input width depends on it)."""
    if part.startswith(LIST_PREFIX):
        return list_kind(list_folder(part, data_dir))
    if part in DATASETS:
        return getattr(DATASETS[part], "kind", None) or _BUILTIN_KINDS.get(part, "person")
    from trials.data.registry import resolve_import_path  # imports the user's module

    return getattr(resolve_import_path(part), "kind", "person")


def dataset_kind(name: str, data_dir: str | os.PathLike) -> str:
    """The common kind of every source; persons and vehicles in one training are an error."""
    kinds = {part: source_kind(part, data_dir) for part in source_names(name)}
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{part} ({kind})" for part, kind in kinds.items())
        raise DatasetError(f"dataset {name!r} mixes persons and vehicles: {shown}; train them separately")
    return next(iter(kinds.values()))
