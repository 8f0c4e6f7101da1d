"""Every image of a dataset opened once, before training: a corrupt file is named in the driver, not found
by a worker (which Tune would retry) or after the last epoch, in query/gallery.

Decoding runs in threads (PIL releases the GIL while it decodes). Files that decoded are remembered in a
small JSON cache by path, size and modification time, so the next launch on the same data opens only new
or changed files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trials.data.datasets import DatasetError, ReIDDataset
from trials.data.images import read_image
from trials.data.registry import load_dataset
from trials.dataset_names import source_names


def dataset_paths(dataset: ReIDDataset) -> list[str]:
    """Every image file a dataset's splits name, each once."""
    splits = (dataset.train, dataset.query, dataset.gallery, dataset.test or [])
    return sorted({s.path for split in splits for s in split})


def bad_images(paths: Iterable[str], cache: Path | None = None, workers: int | None = None) -> list[tuple[str, str]]:
    """(path, reason) for every file that does not decode; good files are recorded in `cache`."""
    known = _read_cache(cache)
    stamps: dict[str, list[int]] = {}
    todo = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            stamps[path] = []
            todo.append(path)
            continue
        stamps[path] = [stat.st_size, stat.st_mtime_ns]
        if known.get(path) != stamps[path]:
            todo.append(path)
    with ThreadPoolExecutor(max_workers=workers or min(16, (os.cpu_count() or 1) * 2)) as pool:
        reasons = list(pool.map(_reason, todo))
    bad = [(path, reason) for path, reason in zip(todo, reasons, strict=True) if reason]
    if cache is not None and todo:
        failed = {path for path, _ in bad}
        known.update({path: stamps[path] for path in todo if path not in failed})
        _write_cache(cache, known)
    return bad


def check_dataset_images(dataset: ReIDDataset, cache: Path | None = None) -> None:
    """Raise one DatasetError that names every image of `dataset` that cannot be read."""
    bad = bad_images(dataset_paths(dataset), cache)
    if bad:
        shown = "; ".join(f"{path} ({reason})" for path, reason in bad[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DatasetError(f"{dataset.name}: {len(bad)} image(s) cannot be read: {shown}{more}. Replace or remove "
                           "them (and their list-file lines)")


def check_source_images(name: str, data_dir: str | os.PathLike, cache: Path | None = None) -> None:
    """Every source of a dataset name (`a+b`: each) loaded, and every image of its splits opened once: the
    check the driver makes before a study's trials and a standalone trial before it trains."""
    for part in source_names(name):
        check_dataset_images(load_dataset(part, data_dir), cache)


def _reason(path: str) -> str:
    try:
        read_image(path)
    except DatasetError as error:
        return str(error).removeprefix(f"cannot read image {path}: ")
    return ""


def _read_cache(cache: Path | None) -> dict[str, list[int]]:
    if cache is None:
        return {}
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: Path, known: dict[str, list[int]]) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(cache)
    except OSError:
        pass  # a cache that cannot be written only costs the next check its time
