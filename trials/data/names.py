"""Dataset names: one built-in layout, `list:PATH`, `module:function`, or several joined with '+'.

A trial's `dataset` stays one flat string (MLflow params and Ray configs hold it as it is); this module
parses it at the boundary. `market1501+msmt17` trains on the union of both training splits and tests on
each. `list:PATH` is a folder of CSV list files (`trials.data.listed`); PATH is absolute or relative to the
data directory. `pkg.module:function` is a loader written in Python (`trials.data.registry`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from trials.data.datasets import DATASETS, DatasetError

LIST_PREFIX = "list:"
KIND_FILE = "dataset.json"  # optional, in a list folder: {"kind": "person" | "vehicle"}
KINDS = ("person", "vehicle")
_BUILTIN_KINDS = {"veri": "vehicle", "vehicleid": "vehicle"}
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def source_names(name: str | list[str] | tuple[str, ...]) -> list[str]:
    """The sources of a dataset name: `a+b` (or a list) -> [a, b]; each checked with `check_name`."""
    parts = list(name) if isinstance(name, list | tuple) else str(name).split("+")
    parts = [str(p).strip() for p in parts]
    for part in parts:
        check_name(part, str(name))
    if len(set(parts)) != len(parts):
        raise DatasetError(f"dataset {name!r}: a source is named twice")
    return parts


def join_names(name: str | list[str] | tuple[str, ...]) -> str:
    """The flat form of a dataset name: a list from a study file becomes `a+b`."""
    return "+".join(source_names(name))


def check_name(part: str, whole: str | None = None) -> None:
    """A single source name must be a known layout, `list:PATH` or `module:function`."""
    where = f"dataset {whole!r}: " if whole is not None and whole != part else ""
    if part in DATASETS or _IMPORT_PATH.match(part):
        return
    if part.startswith(LIST_PREFIX):
        if part[len(LIST_PREFIX):].strip():
            return
        raise DatasetError(f"{where}{part!r} names no folder; expected list:PATH (absolute, or relative to "
                           "the data directory)")
    raise DatasetError(f"{where}unknown dataset {part!r}; expected one of {', '.join(DATASETS)}, "
                       "list:PATH (a folder with train.csv, query.csv, gallery.csv) or module:function "
                       "(a loader written in Python), several joined with '+'")


def list_folder(part: str, data_dir: str | os.PathLike) -> Path:
    """The folder of `list:PATH`: PATH itself when absolute, else under the data directory."""
    path = Path(os.path.expanduser(part[len(LIST_PREFIX):].strip()))
    return path if path.is_absolute() else Path(data_dir) / path


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


def metric_label(part: str) -> str:
    """A source's name in metric keys (`source/LABEL/mAP`): MLflow allows no ':' in metric names."""
    if part.startswith(LIST_PREFIX):
        label = Path(part[len(LIST_PREFIX):].strip().rstrip("/\\")).name or "list"
    elif ":" in part:
        label = part.rsplit(":", 1)[1]
    else:
        label = part
    return re.sub(r"[^\w.\-]", "_", label)
