"""ReID datasets from their on-disk layouts: Market-1501, MSMT17 (V1 and V2), VeRi-776 and VehicleID.

Every dataset becomes a `ReIDDataset` holding lists of `Sample(path, pid, camid)`:

* train: pids relabelled 0..N-1 in the sorted order of the original ids;
* query and gallery: original pids, so that evaluation sees Market-1501 distractors (pid 0) as negatives;
* cameras 0-based; junk images (pid -1) are dropped at load.

VehicleID has no cameras (every image gets camera 0) and no fixed query/gallery: its protocol draws one
random gallery image per test id and queries with the rest. The loader keeps the whole test list as
`ReIDDataset.test`; `query`/`gallery` hold the draw of `vehicleid_split(test, split_seed)` (seed 0 by
default) so that code written for the common interface still has a valid split. Evaluation that follows the
VehicleID protocol averages over several draws of `vehicleid_split` and, as there are no cameras, must not
remove same-camera gallery images.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from trials.dataset_names import DatasetError  # defined with the names, which import no torch
from trials.text_files import TextFileError, read_text

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VEHICLEID_TEST_SIZES = (800, 1600, 2400)


class Sample(NamedTuple):
    """One image: its path, identity (pid) and 0-based camera."""

    path: str
    pid: int
    camid: int


@dataclass
class ReIDDataset:
    """The splits of one dataset. `test` is VehicleID's whole test list (None elsewhere)."""

    name: str
    train: list[Sample] = field(repr=False)
    query: list[Sample] = field(repr=False)
    gallery: list[Sample] = field(repr=False)
    root: str = ""
    kind: str = "person"  # "person" or "vehicle"
    test: list[Sample] | None = field(default=None, repr=False)
    listed: bool = False  # train is in the order of the dataset's own list file (else a directory scan)
    num_train_pids: int = field(init=False)
    num_train_cams: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_train_pids = len({s.pid for s in self.train})
        self.num_train_cams = len({s.camid for s in self.train})


def summarize(dataset: ReIDDataset) -> dict[str, dict[str, int]]:
    """Distinct ids, images and distinct cameras per split (distractor pid 0 counts as one id)."""
    return {
        split: {
            "ids": len({s.pid for s in samples}),
            "images": len(samples),
            "cameras": len({s.camid for s in samples}),
        }
        for split, samples in (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery))
    }


def vehicleid_split(test: Sequence[Sample], seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """VehicleID protocol: one random image per id is the gallery, the other images are the queries.

    Returns (query, gallery), both in the order of `test`. Ids with a single image end up in the gallery
    only. The same `seed` gives the same draw; the protocol averages metrics over draws with seeds 0..9.
    """
    by_pid: dict[int, list[int]] = defaultdict(list)
    for index, sample in enumerate(test):
        by_pid[sample.pid].append(index)
    rng = np.random.default_rng(seed)
    chosen = {indices[int(rng.integers(len(indices)))] for _, indices in sorted(by_pid.items())}
    query = [s for i, s in enumerate(test) if i not in chosen]
    gallery = [s for i, s in enumerate(test) if i in chosen]
    return query, gallery


# ---------------------------------------------------------------------------------------------- helpers


def _stand_in_hint(layout: str, data_dir: Path) -> str:
    return (f"Download the dataset there, or make synthetic stand-in data with "
            f"`python -m trials.data synthesize --layout {layout} --out {data_dir}`.")


def _dataset_root(data_dir: Path, folder: str, layout: str) -> Path:
    """`data_dir/folder`, or `data_dir` itself when it already is that folder."""
    if not data_dir.is_dir():
        raise DatasetError(f"{layout}: data directory {data_dir} does not exist. {_stand_in_hint(layout, data_dir)}")
    if data_dir.name == folder:
        return data_dir
    root = data_dir / folder
    if not root.is_dir():
        raise DatasetError(
            f"{layout}: expected the folder {folder}/ in {data_dir}, but {root} does not exist. "
            + _stand_in_hint(layout, data_dir)
        )
    return root


def _sub_dir(root: Path, name: str, layout: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise DatasetError(
            f"{layout}: expected the sub-folder {name}/ in {root}, but {path} does not exist. "
            + _stand_in_hint(layout, root.parent)
        )
    return path


def _list_file(root: Path, name: str, layout: str) -> Path:
    path = root / name
    if not path.is_file():
        raise DatasetError(
            f"{layout}: expected the list file {name} in {root}, but {path} does not exist. "
            + _stand_in_hint(layout, root.parent)
        )
    return path


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(items[:5])
    return shown + (", ..." if len(items) > 5 else "")


def _parse_folder(folder: Path, pattern: re.Pattern, expected: str) -> list[Sample]:
    """Every image in `folder` (sorted by name), pid and 1-based camera read from its name by `pattern`.

    Returns samples with 0-based cameras; junk (pid -1) is kept here and dropped by the caller.
    """
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise DatasetError(f"{folder} holds no images (expected files named like {expected})")
    samples, bad = [], []
    for name in names:
        match = pattern.match(name)
        if match is None or int(match.group(2)) < 1:
            bad.append(name)
            continue
        samples.append(Sample(str(folder / name), int(match.group(1)), int(match.group(2)) - 1))
    if bad:
        raise DatasetError(
            f"{len(bad)} of {len(names)} file names in {folder} do not parse as {expected} "
            f"(pid, then camera c1, c2, ...): {_examples(bad)}"
        )
    return samples


def _files_under(folder: Path) -> set[str]:
    """Relative paths (with '/') of every file under `folder`."""
    found = set()
    for dirpath, _, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found.update(prefix + f for f in filenames)
    return found


def _read_list(list_path: Path, parse: Callable[[str], tuple[str, int, int] | None], expected: str,
               ) -> list[tuple[str, int, int]]:
    """(relative path, pid, 0-based camera) per non-blank line; a line `parse` rejects is an error."""
    try:
        text = read_text(list_path, "list file")
    except TextFileError as error:
        raise DatasetError(str(error)) from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        entry = parse(line)
        if entry is None:
            raise DatasetError(f"{list_path}, line {number}: expected {expected}, got {line!r}")
        entries.append(entry)
    if not entries:
        raise DatasetError(f"{list_path} lists no images (expected lines like {expected})")
    return entries


def _resolve(entries: Iterable[tuple[str, int, int]], image_dir: Path, present: set[str], list_path: Path,
             ) -> list[Sample]:
    entries = list(entries)
    missing = [rel for rel, _, _ in entries if rel not in present]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(entries)} images listed in {list_path} are not in {image_dir}: "
            f"{_examples(missing)}"
        )
    return [Sample(str(image_dir / rel), pid, camid) for rel, pid, camid in entries]


def _relabel(samples: Sequence[Sample]) -> list[Sample]:
    """Train pids -> 0..N-1 in sorted order of the original pids."""
    mapping = {pid: label for label, pid in enumerate(sorted({s.pid for s in samples}))}
    return [s._replace(pid=mapping[s.pid]) for s in samples]


def _drop_junk(samples: Sequence[Sample]) -> list[Sample]:
    return [s for s in samples if s.pid != -1]


# ------------------------------------------------------------------------------------- the four layouts

_MARKET_NAME = re.compile(r"^(-1|\d+)_c(\d+)")
_MARKET_EXPECTED = "0002_c1s1_000451_03.jpg"
_VERI_NAME = re.compile(r"^(-1|\d+)_c(\d+)_")
_VERI_EXPECTED = "0001_c001_00016450_0.jpg"


def load_market1501(data_dir: str | os.PathLike) -> ReIDDataset:
    """Market-1501: `Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}`.

    Names `0002_c1s1_000451_03.jpg` (pid, camera c1..c6). Junk (pid -1) is dropped; distractors (pid 0000)
    stay in the gallery.
    """
    layout = "market1501"
    root = _dataset_root(Path(data_dir), "Market-1501-v15.09.15", layout)
    splits = [_drop_junk(_parse_folder(_sub_dir(root, name, layout), _MARKET_NAME, _MARKET_EXPECTED))
              for name in ("bounding_box_train", "query", "bounding_box_test")]
    train, query, gallery = splits
    return ReIDDataset(layout, _relabel(train), query, gallery, root=str(root), kind="person")


def load_veri(data_dir: str | os.PathLike) -> ReIDDataset:
    """VeRi-776: `VeRi/{image_train,image_query,image_test}`, names `0001_c001_00016450_0.jpg`."""
    layout = "veri"
    root = _dataset_root(Path(data_dir), "VeRi", layout)
    splits = [_drop_junk(_parse_folder(_sub_dir(root, name, layout), _VERI_NAME, _VERI_EXPECTED))
              for name in ("image_train", "image_query", "image_test")]
    train, query, gallery = splits
    return ReIDDataset(layout, _relabel(train), query, gallery, root=str(root), kind="vehicle")


MSMT17_VERSIONS = {"v1": ("MSMT17_V1", "train", "test"), "v2": ("MSMT17_V2", "mask_train_v2", "mask_test_v2")}
_MSMT_EXPECTED = "'<relative path> <pid>' such as '0000/0000_000_01_0303morning_0015_0.jpg 0'"


def _parse_msmt_line(line: str) -> tuple[str, int, int] | None:
    """`0000/0000_000_01_0303morning_0015_0.jpg 0`: the camera is the third '_' field of the name."""
    fields = line.split()
    if len(fields) != 2 or not re.fullmatch(r"-?\d+", fields[1]):
        return None
    parts = fields[0].rsplit("/", 1)[-1].split("_")
    if len(parts) < 3 or not parts[2].isdigit() or int(parts[2]) < 1:
        return None
    return fields[0], int(fields[1]), int(parts[2]) - 1


def load_msmt17(data_dir: str | os.PathLike, version: str | None = None) -> ReIDDataset:
    """MSMT17: `MSMT17_V1/{train,test}` or `MSMT17_V2/{mask_train_v2,mask_test_v2}`, with list files.

    `list_{train,val,query,gallery}.txt` beside the image folders hold `<relative path> <pid>` lines; train
    is list_train + list_val. `version` None picks whichever of MSMT17_V1 / MSMT17_V2 exists (V1 first).
    """
    layout = "msmt17"
    data_dir = Path(data_dir)
    if version is None:
        if not data_dir.is_dir():
            raise DatasetError(f"{layout}: data directory {data_dir} does not exist. "
                               + _stand_in_hint(layout, data_dir))
        found = [v for v, (folder, _, _) in MSMT17_VERSIONS.items()
                 if data_dir.name == folder or (data_dir / folder).is_dir()]
        if not found:
            raise DatasetError(
                f"{layout}: expected the folder MSMT17_V1/ or MSMT17_V2/ in {data_dir}, found neither. "
                + _stand_in_hint(layout, data_dir)
            )
        version = found[0]
    folder, train_name, test_name = MSMT17_VERSIONS[version]
    root = _dataset_root(data_dir, folder, f"msmt17_{version}")
    train_dir, test_dir = _sub_dir(root, train_name, layout), _sub_dir(root, test_name, layout)
    present = {train_dir: _files_under(train_dir), test_dir: _files_under(test_dir)}

    def read(list_name: str, image_dir: Path) -> list[Sample]:
        list_path = _list_file(root, list_name, layout)
        return _resolve(_read_list(list_path, _parse_msmt_line, _MSMT_EXPECTED), image_dir, present[image_dir],
                        list_path)

    train = read("list_train.txt", train_dir) + read("list_val.txt", train_dir)
    query = _drop_junk(read("list_query.txt", test_dir))
    gallery = _drop_junk(read("list_gallery.txt", test_dir))
    return ReIDDataset(layout, _relabel(_drop_junk(train)), query, gallery, root=str(root), kind="person",
                       listed=True)


_VEHICLEID_EXPECTED = "'<image id> <vehicle id>' such as '0004034 3'"


def _parse_vehicleid_line(line: str) -> tuple[str, int, int] | None:
    fields = line.split()
    if len(fields) != 2 or not re.fullmatch(r"\d+", fields[1]):
        return None
    return fields[0] + ".jpg", int(fields[1]), 0


def load_vehicleid(data_dir: str | os.PathLike, test_size: int = 2400, split_seed: int = 0) -> ReIDDataset:
    """VehicleID: `VehicleID/image/<imgid>.jpg` and `VehicleID/train_test_split/*.txt` (`<imgid> <vid>`).

    `test_size` picks test_list_800/1600/2400.txt. No cameras: every image gets camera 0. `test` is the
    whole test list; `query`/`gallery` are `vehicleid_split(test, split_seed)`.
    """
    layout = "vehicleid"
    if test_size not in VEHICLEID_TEST_SIZES:
        raise DatasetError(f"vehicleid: test_size must be one of {', '.join(map(str, VEHICLEID_TEST_SIZES))}, "
                           f"got {test_size!r}")
    data_dir = Path(data_dir)
    try:
        root = _dataset_root(data_dir, "VehicleID", layout)
    except DatasetError:
        if not (data_dir / "VehicleID_V1.0").is_dir():
            raise
        root = data_dir / "VehicleID_V1.0"  # the name of the official archive's folder
    image_dir = _sub_dir(root, "image", layout)
    split_dir = _sub_dir(root, "train_test_split", layout)
    present = {e.name for e in os.scandir(image_dir) if e.is_file()}
    if not present:
        raise DatasetError(f"{image_dir} holds no images (expected files named like 0004034.jpg)")

    def read(list_name: str) -> list[Sample]:
        list_path = _list_file(split_dir, list_name, layout)
        return _resolve(_read_list(list_path, _parse_vehicleid_line, _VEHICLEID_EXPECTED), image_dir, present,
                        list_path)

    train = read("train_list.txt")
    test = read(f"test_list_{test_size}.txt")
    query, gallery = vehicleid_split(test, split_seed)
    return ReIDDataset(layout, _relabel(train), query, gallery, root=str(root), kind="vehicle", test=test,
                       listed=True)


# ------------------------------------------------------------------------------------ the built-in layouts

# Their names, torch-free, are trials.dataset_names.BUILTIN; trials.data.registry.load_dataset reads any name.
DATASETS: dict[str, Callable[..., ReIDDataset]] = {
    "market1501": load_market1501,
    "msmt17": load_msmt17,
    "msmt17_v1": partial(load_msmt17, version="v1"),
    "msmt17_v2": partial(load_msmt17, version="v2"),
    "veri": load_veri,
    "vehicleid": load_vehicleid,
}
