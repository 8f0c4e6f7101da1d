"""Loaders written in Python, for layouts that are neither built in nor CSV list files.

A loader is a function of the data directory that returns `(train, query, gallery)`, each a sequence of
`(path, pid, camid)` (or `Sample`s; camid may be None for single-camera data). Labels may be any strings
or integers; they are checked and mapped like list files' (`trials.data.listed`).

* In one Python process: `register_dataset("mine", load_mine)`, then `dataset: mine` works there.
* In a study, whose trials run in other processes: name the function by its import path,
  `dataset: mypkg.mymodule:load_mine`; each process imports it. Set `load_mine.kind = "vehicle"` for
  vehicles (persons otherwise).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trials.data.datasets import DATASETS, DatasetError, ReIDDataset
from trials.data.listed import Row, samples_dataset
from trials.data.names import KINDS

Loader = Callable[[str], tuple[Sequence[Any], Sequence[Any], Sequence[Any]]]


def register_dataset(name: str, loader: Loader, kind: str = "person") -> None:
    """Make `name` a dataset in this process: `load_dataset(name, data_dir)` calls `loader(data_dir)`."""
    if not name or any(c in name for c in "+:/") or name.startswith("list"):
        raise DatasetError(f"register_dataset: {name!r} cannot be a dataset name (no '+', ':' or '/', and not "
                           "starting with 'list')")
    if kind not in KINDS:
        raise DatasetError(f"register_dataset: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def load(data_dir: str | os.PathLike) -> ReIDDataset:
        return loader_dataset(name, loader, data_dir, kind)

    load.kind = kind  # read by trials.data.names.source_kind
    DATASETS[name] = load


def resolve_import_path(name: str) -> Loader:
    """The function `module:attr` names; import failures are DatasetErrors naming it."""
    module_name, attr = name.rsplit(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DatasetError(f"dataset {name!r}: cannot import {module_name} ({error}); the module must be "
                           "importable where the trials run (inside the repository, or on PYTHONPATH)") from None
    loader = getattr(module, attr, None)
    if not callable(loader):
        raise DatasetError(f"dataset {name!r}: {module_name} has no function {attr}")
    return loader


def load_import_path(name: str, data_dir: str | os.PathLike) -> ReIDDataset:
    loader = resolve_import_path(name)
    return loader_dataset(name, loader, data_dir, getattr(loader, "kind", "person"))


def loader_dataset(name: str, loader: Loader, data_dir: str | os.PathLike, kind: str) -> ReIDDataset:
    """Call `loader(data_dir)` and check its samples as list files are checked."""
    try:
        result = loader(str(data_dir))
        train, query, gallery = result
    except DatasetError:
        raise
    except (TypeError, ValueError) as error:
        raise DatasetError(f"dataset {name!r}: the loader must return (train, query, gallery): {error}") from None
    base = Path(data_dir)
    splits = []
    for split, samples in (("train", train), ("query", query), ("gallery", gallery)):
        rows: list[Row] = []
        for index, sample in enumerate(samples):
            where = f"dataset {name!r}, {split} sample {index}"
            try:
                path, pid, camid = sample
            except (TypeError, ValueError):
                raise DatasetError(f"{where}: expected (path, pid, camid), got {sample!r}") from None
            camid = None if camid is None or camid == "" else str(camid)
            rows.append((str(path), str(base / path), str(pid), camid, where))
        if not rows:
            raise DatasetError(f"dataset {name!r}: the loader returned no {split} samples")
        splits.append(rows)
    return samples_dataset(name, *splits, root=str(base), kind=kind)
