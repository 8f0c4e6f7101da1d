"""Any ReID dataset from three CSV list files: `list:PATH` names a folder with train/query/gallery.csv.

Each file has a header and the columns `path,pid[,camid]`; paths are relative to the folder. Identity and
camera labels may be any strings. Train ids become 0..N-1 in the sorted order of their labels; query and
gallery share one mapping, so a query matches the gallery images with the same label. Cameras share one
mapping over the three files. Without a camid column every image is camera 0 and evaluation keeps every
gallery image (no same-camera removal), as for VehicleID. Train stays in the file's order (`listed`).

Every problem is a `DatasetError` naming the file and line; `samples_dataset` applies the same checks
to samples returned by a loader written in Python (`trials.data.registry`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from trials.data.datasets import ReIDDataset, Sample
from trials.dataset_names import DatasetError, list_kind
from trials.text_files import TextFileError, read_text

LIST_FILES = ("train.csv", "query.csv", "gallery.csv")
COLUMNS = ("path", "pid", "camid")

# A row as read: (path as written, absolute path, pid label, camid label or None, where: "FILE, line N").
Row = tuple[str, str, str, "str | None", str]


def load_list(folder: str | os.PathLike, name: str) -> ReIDDataset:
    """The dataset in `folder`: its three list files, every listed image present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{name}: the folder {folder} does not exist (expected a folder with "
                           f"{', '.join(LIST_FILES)}; make an example with "
                           f"`python -m trials.data synthesize --layout list --out DIR`)")
    splits = [read_list_file(folder, file) for file in LIST_FILES]
    return samples_dataset(name, *splits, root=str(folder), kind=list_kind(folder))


def read_list_file(folder: Path, file: str) -> list[Row]:
    """The rows of one list file; a bad header, row or missing image names the file and line."""
    path = folder / file
    if not path.is_file():
        raise DatasetError(f"{path}: list file not found (expected {', '.join(LIST_FILES)} in {folder})")
    try:
        text = read_text(path, "list file")
    except TextFileError as error:
        raise DatasetError(str(error)) from None
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        lines = _rows(reader, path)
        header = [h.strip() for h in next(lines, (1, []))[1]]
        missing = [c for c in COLUMNS[:2] if c not in header]
        unknown = [c for c in header if c not in COLUMNS]
        if missing or unknown or len(set(header)) != len(header):
            problem = (f"missing column(s) {', '.join(missing)}" if missing else
                       f"unknown column(s) {', '.join(unknown)}" if unknown else "a column named twice")
            raise DatasetError(f"{path}, line 1: {problem}; expected the header path,pid or path,pid,camid, "
                               f"got {','.join(header)!r}")
        index = {c: header.index(c) for c in header}
        rows: list[Row] = []
        for line, fields in lines:
            where = f"{path}, line {line}"
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                runs_on = f" (the row runs on to line {reader.line_num}: a quote left open?)" \
                    if reader.line_num > line else ""
                raise DatasetError(f"{where}: expected {len(header)} fields ({','.join(header)}), "
                                   f"got {len(fields)}{runs_on}: {','.join(fields)[:200]!r}")
            values = {c: fields[i].strip() for c, i in index.items()}
            for column in ("path", "pid"):
                if not values[column]:
                    raise DatasetError(f"{where}: empty {column}")
            camid = values.get("camid") or None
            rows.append((values["path"], str(folder / values["path"]), values["pid"], camid, where))
    if not rows:
        raise DatasetError(f"{path} lists no images (expected rows like 'images/0001_a.jpg,0001,cam1')")
    return rows


def _rows(reader, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, its fields); a row the csv module refuses names its line."""
    while True:
        line = reader.line_num + 1
        try:
            yield line, next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DatasetError(f"{path}, line {line}: not a CSV row ({error})") from None


def samples_dataset(name: str, train: Sequence[Row], query: Sequence[Row], gallery: Sequence[Row],
                    root: str = "", kind: str = "person") -> ReIDDataset:
    """Check the three splits and turn their labels into integers (see the module docstring)."""
    for rows in (train, query, gallery):
        _check_rows(rows)
    _check_cameras(query, gallery)
    in_gallery = {pid for *_, pid, _, _ in gallery}
    for _, _, pid, _, where in query:
        if pid not in in_gallery:
            raise DatasetError(f"{where}: id {pid!r} is in no gallery image; every query id needs a match "
                               "in the gallery")
    gallery_paths = {absolute: where for _, absolute, _, _, where in gallery}
    for written, absolute, _, _, where in query:
        if absolute in gallery_paths:
            raise DatasetError(f"{where}: {written} is also in the gallery ({gallery_paths[absolute]}); "
                               "a query image must not be its own match")
    cameras = _mapping(cam for rows in (train, query, gallery) for *_, cam, _ in rows if cam is not None)
    train_ids = _mapping(pid for *_, pid, _, _ in train)
    test_ids = _mapping(pid for rows in (query, gallery) for *_, pid, _, _ in rows)

    def samples(rows: Iterable[Row], ids: dict[str, int]) -> list[Sample]:
        return [Sample(absolute, ids[pid], cameras[cam] if cam is not None else 0) for _, absolute, pid, cam, _ in rows]

    return ReIDDataset(name, samples(train, train_ids), samples(query, test_ids), samples(gallery, test_ids),
                       root=root, kind=kind, listed=True)


def _check_rows(rows: Sequence[Row]) -> None:
    """Every image present, listed once, and a camera for every row or for none."""
    seen: dict[str, str] = {}
    for written, absolute, _, _, where in rows:
        if absolute in seen:
            raise DatasetError(f"{where}: {written} is listed twice (first at {seen[absolute].rsplit(', ', 1)[1]})")
        seen[absolute] = where
        if not os.path.isfile(absolute):
            raise DatasetError(f"{where}: the image {written} does not exist ({absolute})")
    with_camera = [cam is not None for _, _, _, cam, _ in rows]
    if any(with_camera) and not all(with_camera):
        first = rows[with_camera.index(False)][4]
        raise DatasetError(f"{first}: no camid, but other rows of the file have one; give every row a camid, "
                           "or drop the column for the single-camera protocol")


def _check_cameras(query: Sequence[Row], gallery: Sequence[Row]) -> None:
    """Same-camera removal needs cameras on both sides."""
    has = [rows[0][3] is not None for rows in (query, gallery)]
    if has[0] != has[1]:
        where = (query if not has[0] else gallery)[0][4].rsplit(", ", 1)[0]
        raise DatasetError(f"{where}: has no camid column but the other of query/gallery has one; give both "
                           "cameras, or neither")


def _natural(label: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", label) if t)


def _mapping(labels: Iterable[str]) -> dict[str, int]:
    """Labels -> 0..N-1 in natural order (id2 before id10)."""
    return {label: i for i, label in enumerate(sorted(set(labels), key=_natural))}
