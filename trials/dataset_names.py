"""Dataset names: one built-in layout, `list:PATH`, `module:function`, or several joined with '+'.

A trial's `dataset` stays one flat string (MLflow params and Ray configs hold it as it is); this module
parses it at the boundary, without importing torch or reading anything, so that configs and study files are
checked cheaply. `market1501+msmt17` trains on the union of both training splits and tests on each.
`list:PATH` is a folder of CSV list files (`trials.data.listed`); PATH is absolute or relative to the data
directory. `pkg.module:function` is a loader written in Python (`trials.data.registry`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

BUILTIN = ("market1501", "msmt17", "msmt17_v1", "msmt17_v2", "veri", "vehicleid")  # trials.data.datasets
LIST_PREFIX = "list:"
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class DatasetError(ValueError):
    """A dataset folder, file, name or option that cannot be used; the message names it."""


def known_names() -> list[str]:
    """The built-in layouts and the names registered in this process (trials.data.registry)."""
    loaded = sys.modules.get("trials.data.datasets")
    return list(getattr(loaded, "DATASETS", BUILTIN))

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
    if part in known_names() or _IMPORT_PATH.match(part):
        return
    if part.startswith(LIST_PREFIX):
        if part[len(LIST_PREFIX):].strip():
            return
        raise DatasetError(f"{where}{part!r} names no folder; expected list:PATH (absolute, or relative to "
                           "the data directory)")
    raise DatasetError(f"{where}unknown dataset {part!r}; expected one of {', '.join(known_names())}, "
                       "list:PATH (a folder with train.csv, query.csv, gallery.csv) or module:function "
                       "(a loader written in Python), several joined with '+'")


def list_folder(part: str, data_dir: str | os.PathLike) -> Path:
    """The folder of `list:PATH`: PATH itself when absolute, else under the data directory."""
    path = Path(os.path.expanduser(part[len(LIST_PREFIX):].strip()))
    return path if path.is_absolute() else Path(data_dir) / path


def metric_label(part: str) -> str:
    """A source's name in metric keys (`source/LABEL/mAP`): MLflow allows no ':' in metric names."""
    if part.startswith(LIST_PREFIX):
        label = Path(part[len(LIST_PREFIX):].strip().rstrip("/\\")).name or "list"
    elif ":" in part:
        label = part.rsplit(":", 1)[1]
    else:
        label = part
    return re.sub(r"[^\w.\-]", "_", label)
