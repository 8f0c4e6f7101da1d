"""Dataset names and what they tell without loading an image: the sources, a list folder, a metric label, and
whether the data are persons or vehicles (the network's input width depends on it).

A name is one built-in layout, `list:PATH` (a folder of CSV list files, `trials.data.listed`; PATH absolute
or relative to the data directory), `pkg.module:function` (a loader written in Python), a name registered
in this process (`trials.data.registry.register_dataset`), or several of them joined with '+':
`market1501+msmt17` trains on the union of both training splits and tests on each. A trial's `dataset`
stays one flat string (MLflow params and Ray configs hold it as it is); this module parses it at the
boundary and imports no torch, so configs and study files are checked cheaply in the driver.

Kinds: a list folder says so in an optional `dataset.json` (`{"kind": "vehicle"}`), a loader by its `kind`
attribute, a built-in layout by its name. Persons and vehicles never train together.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from trials.text_files import TextFileError, read_json

BUILTIN = ("market1501", "msmt17", "msmt17_v1", "msmt17_v2", "veri", "vehicleid")  # trials.data.datasets
BUILTIN_KINDS = {"veri": "vehicle", "vehicleid": "vehicle"}  # the others: persons
KINDS = ("person", "vehicle")
KIND_FILE = "dataset.json"  # optional, in a list folder: {"kind": "person" | "vehicle"}
LIST_PREFIX = "list:"
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class DatasetError(ValueError):
    """A dataset folder, file, name or option that cannot be used; the message names it."""


class LoaderError(DatasetError):
    """Code a user wrote for a dataset (a loader, its module) raised; the message names the loader, the dataset
    and the exception."""


def registered() -> dict[str, tuple[Callable, str]]:
    """Names registered in this process -> (loader, kind); registering imports `trials.data.registry`, so a
    process that never imported it registered none (and this module stays free of torch)."""
    loaded = sys.modules.get("trials.data.registry")
    return dict(getattr(loaded, "REGISTERED", {}))


def known_names() -> list[str]:
    """The built-in layouts and the names registered in this process."""
    return [*BUILTIN, *registered()]


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


def is_builtin(part: str) -> bool:
    """A built-in layout, which `--synthetic` can stand in for (list folders and loaders are the user's own)."""
    return part in BUILTIN


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


# ---------------------------------------------------------------------------------------------- kinds


def list_kind(folder: Path) -> str:
    """`person` unless the folder's dataset.json says `{"kind": "vehicle"}`."""
    marker = folder / KIND_FILE
    if not marker.is_file():
        return "person"
    try:
        meta = read_json(marker, KIND_FILE)
    except TextFileError as error:
        raise DatasetError(str(error)) from None
    if not isinstance(meta, dict) or set(meta) - {"kind"} or meta.get("kind", "person") not in KINDS:
        raise DatasetError(f"{marker}: expected {{\"kind\": \"person\"}} or {{\"kind\": \"vehicle\"}}, got {meta!r}")
    return meta.get("kind", "person")


def source_kind(part: str, data_dir: str | os.PathLike) -> str:
    """person or vehicle of one source, without loading its images."""
    if part.startswith(LIST_PREFIX):
        return list_kind(list_folder(part, data_dir))
    if part in registered():
        return registered()[part][1]
    if part in BUILTIN:
        return BUILTIN_KINDS.get(part, "person")
    return getattr(resolve_import_path(part), "kind", "person")


def dataset_kind(name: str, data_dir: str | os.PathLike) -> str:
    """The common kind of every source; persons and vehicles in one training are an error."""
    kinds = {part: source_kind(part, data_dir) for part in source_names(name)}
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{part} ({kind})" for part, kind in kinds.items())
        raise DatasetError(f"dataset {name!r} mixes persons and vehicles: {shown}; train them separately")
    return next(iter(kinds.values()))


# ------------------------------------------------------------------------------- loaders written in Python


def resolve_import_path(name: str) -> Callable:
    """The function `module:attr` names. A module that cannot be imported, or whose import raises, and a
    missing function are LoaderErrors naming the dataset."""
    module_name, attr = name.rsplit(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise LoaderError(f"dataset {name!r}: cannot import {module_name} ({error}); the module must be "
                          "importable where the trials run (inside the repository, or on PYTHONPATH)") from None
    except Exception as error:  # noqa: BLE001 - the user's module raised while it was imported
        raise LoaderError(f"dataset {name!r}: importing the module {module_name} raised "
                          f"{user_exception(error)}") from None
    loader = getattr(module, attr, None)
    if not callable(loader):
        raise LoaderError(f"dataset {name!r}: {module_name} has no function {attr}")
    return loader


def user_exception(error: BaseException) -> str:
    """`Type: message (file, line N)`: an exception raised by user code, with the deepest frame that raised it."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"
