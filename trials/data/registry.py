"""Which loader reads a dataset name: a built-in layout (`trials.data.datasets`), a folder of CSV list files
(`trials.data.listed`), or a loader written in Python, for layouts that are neither.

A loader is a function of the data directory that returns `(train, query, gallery)`, each a sequence of
`(path, pid, camid)` (or `Sample`s; camid may be None for single-camera data). Labels may be any strings
or integers; they are checked and mapped like list files' (`trials.data.listed`).

* In one Python process: `register_dataset("mine", load_mine)`, then `dataset: mine` works there.
* In a study, whose trials run in other processes: name the function by its import path,
  `dataset: mypkg.mymodule:load_mine`; each process imports it. Set `load_mine.kind = "vehicle"` for
  vehicles (persons otherwise).

A loader that raises is reported as one `LoaderError` naming the loader, the dataset and the exception.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trials import dataset_names as names
from trials.data.datasets import DATASETS, ReIDDataset
from trials.data.listed import Row, load_list, samples_dataset
from trials.dataset_names import KINDS, DatasetError, LoaderError

Loader = Callable[[str], tuple[Sequence[Any], Sequence[Any], Sequence[Any]]]
REGISTERED: dict[str, tuple[Loader, str]] = {}  # names registered in this process -> (loader, kind)


def register_dataset(name: str, loader: Loader, kind: str = "person") -> None:
    """Make `name` a dataset in this process: `load_dataset(name, data_dir)` calls `loader(data_dir)`."""
    if not name or any(c in name for c in "+:/") or name.startswith("list") or name in DATASETS:
        raise DatasetError(f"register_dataset: {name!r} cannot be a dataset name (no '+', ':' or '/', not "
                           "starting with 'list', not a built-in layout)")
    if kind not in KINDS:
        raise DatasetError(f"register_dataset: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    REGISTERED[name] = (loader, kind)


def load_dataset(name: str, data_dir: str | os.PathLike, **options) -> ReIDDataset:
    """Load one source `name` from `data_dir`, the folder that holds its layout.

    Options: vehicleid takes `test_size` (800, 1600 or 2400) and `split_seed`; the others take none.
    `list:PATH` is a folder of CSV list files, PATH absolute or relative to `data_dir`; `module:function`
    or a registered name a loader written in Python. A name joined with '+' is loaded source by source
    (trials.data.splits).
    """
    names.check_name(name)
    if name in DATASETS:
        loader = DATASETS[name]
        allowed = [p for p in inspect.signature(loader).parameters if p not in ("data_dir", "version")]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise DatasetError(f"{name}: unknown option(s) {', '.join(unknown)}; "
                               f"known options: {', '.join(allowed) or 'none'}")
        dataset = loader(data_dir, **options)
        dataset.name = name
        return dataset
    if options:
        raise DatasetError(f"{name}: unknown option(s) {', '.join(sorted(options))}; known options: none")
    if name.startswith(names.LIST_PREFIX):
        return load_list(names.list_folder(name, data_dir), name)
    if name in REGISTERED:
        loader, kind = REGISTERED[name]
        return loader_dataset(name, loader, data_dir, kind)
    loader = names.resolve_import_path(name)
    return loader_dataset(name, loader, data_dir, getattr(loader, "kind", "person"))


def loader_dataset(name: str, loader: Loader, data_dir: str | os.PathLike, kind: str) -> ReIDDataset:
    """Call `loader(data_dir)` and check its samples as list files are checked."""
    where = f"dataset {name!r}: its loader {_loader_name(loader)}"
    try:
        result = loader(str(data_dir))
    except DatasetError as error:  # the loader's own account of what is wrong
        raise LoaderError(f"{where} reported: {error}") from None
    except Exception as error:  # noqa: BLE001 - user code: any exception is reported, never a traceback
        raise LoaderError(f"{where} raised {names.user_exception(error)}") from None
    try:
        train, query, gallery = result
    except (TypeError, ValueError):
        raise LoaderError(f"{where} must return (train, query, gallery), got {type(result).__name__}") from None
    base = Path(data_dir)
    splits = []
    for split, samples in (("train", train), ("query", query), ("gallery", gallery)):
        rows: list[Row] = []
        for index, sample in enumerate(samples):
            at = f"dataset {name!r}, {split} sample {index}"
            try:
                path, pid, camid = sample
            except (TypeError, ValueError):
                raise DatasetError(f"{at}: expected (path, pid, camid), got {sample!r}") from None
            camid = None if camid is None or camid == "" else str(camid)
            rows.append((str(path), str(base / path), str(pid), camid, at))
        if not rows:
            raise DatasetError(f"{where} returned no {split} samples")
        splits.append(rows)
    return samples_dataset(name, *splits, root=str(base), kind=kind)


def _loader_name(loader: Loader) -> str:
    module = getattr(loader, "__module__", None)
    qualname = getattr(loader, "__qualname__", None) or type(loader).__name__
    return f"{module}.{qualname}" if module else qualname
