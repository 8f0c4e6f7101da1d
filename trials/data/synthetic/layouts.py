"""Which identity each camera sees in which split, and how the shots are written in each real dataset layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

LAYOUTS = ("market1501", "msmt17", "msmt17_v1", "msmt17_v2", "veri", "vehicleid", "list")


DOMAINS = ("A", "B")


DEFAULT_IDS = 24


DEFAULT_IMAGE_SIZE = {"person": (64, 32), "vehicle": (64, 64)}


MARKER = "synthetic.json"


_FAMILY = {"market1501": 1, "msmt17": 2, "msmt17_v1": 2, "msmt17_v2": 2, "veri": 3, "vehicleid": 4, "list": 5}


FOLDER = {"market1501": "Market-1501-v15.09.15", "msmt17": "MSMT17_V1", "msmt17_v1": "MSMT17_V1",
           "msmt17_v2": "MSMT17_V2", "veri": "VeRi", "vehicleid": "VehicleID", "list": "custom"}


CAMERAS = {"market1501": 6, "msmt17": 15, "veri": 20, "vehicleid": 6, "list": 6}


_JPEG_QUALITY = 92


@dataclass(frozen=True)
class Shot:
    split: str  # train, val (MSMT17 list_val), query, gallery, test (VehicleID), junk, distractor
    ident: int  # index of the identity (-1 for junk and distractors)
    pid: int  # the id written to disk
    cam: int  # 0-based camera
    key: int  # running number: seeds the image and makes its name unique


def seeded_rng(seed: int, layout: str, domain: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, _FAMILY[layout], DOMAINS.index(domain), *keys])


def plan_shots(rng: np.random.Generator, layout: str, n_ids: int) -> list[Shot]:
    """Which identity is photographed by which camera, in which split, under which pid."""
    n_train = n_ids // 2
    is_train = rng.permutation(np.array([True] * n_train + [False] * (n_ids - n_train)))
    family = "msmt17" if layout.startswith("msmt17") else layout
    if family == "msmt17":  # train and test pids both count from 0, as in the real lists
        pids, counters = [], {True: 0, False: 0}
        for t in is_train:
            pids.append(counters[bool(t)])
            counters[bool(t)] += 1
    else:
        top = {"market1501": 1501, "veri": 776, "vehicleid": 26000, "list": 1501}[family]
        top = max(top, 4 * n_ids) if family != "market1501" else max(top, min(9999, 4 * n_ids))
        pids = sorted(int(p) for p in rng.choice(np.arange(1, top + 1), size=n_ids, replace=False))
    n_cams = CAMERAS[family]
    shots: list[Shot] = []

    def add(split, ident, pid, cam):
        shots.append(Shot(split, ident, pid, cam, len(shots)))

    for ident in range(n_ids):
        m = int(rng.integers(2, min(4, n_cams) + 1))
        cams = sorted(int(c) for c in rng.choice(n_cams, size=m, replace=False))
        n = int(rng.integers(6, 11))
        seen = cams + [int(c) for c in rng.choice(cams, size=n - m)]
        if is_train[ident]:
            for cam in seen:
                add("train", ident, pids[ident], cam)
            if family == "msmt17":  # list_val: one image of each train id
                add("val", ident, pids[ident], seen[-1])
        elif family == "vehicleid":
            for cam in seen:
                add("test", ident, pids[ident], cam)
        else:
            for cam in cams:
                add("query", ident, pids[ident], cam)
            for cam in seen:
                add("gallery", ident, pids[ident], cam)
    if family == "market1501":
        extra = max(2, n_ids // 4)
        for _ in range(extra):
            add("junk", -1, -1, int(rng.integers(n_cams)))
        for _ in range(extra):
            add("distractor", -1, 0, int(rng.integers(n_cams)))
    return shots


def layout_counts(layout: str, shots: list[Shot]) -> dict:
    """What the parser will report: the summary of train / query / gallery, plus layout extras."""
    def stats(selected: list[Shot], cameras: bool = True) -> dict[str, int]:
        return {"ids": len({s.pid for s in selected}), "images": len(selected),
                "cameras": len({s.cam for s in selected}) if cameras else (1 if selected else 0)}

    def of(*splits: str) -> list[Shot]:
        return [s for s in shots if s.split in splits]

    if layout == "vehicleid":
        test_ids = sorted({s.pid for s in of("test")})
        lists = {}
        for size, chosen in _vehicleid_lists(test_ids).items():
            selected = [s for s in of("test") if s.pid in chosen]
            lists[str(size)] = {"ids": len(chosen), "images": len(selected)}
        first = _vehicleid_lists(test_ids)[2400]  # the default test list
        selected = [s for s in of("test") if s.pid in first]
        return {
            "train": stats(of("train"), cameras=False),
            "query": {"ids": len(first), "images": len(selected) - len(first), "cameras": 1},
            "gallery": {"ids": len(first), "images": len(first), "cameras": 1},
            "test_lists": lists,
        }
    counts = {"train": stats(of("train", "val")), "query": stats(of("query")),
              "gallery": stats(of("gallery", "distractor"))}
    if layout == "market1501":
        counts["junk"] = len(of("junk"))
        counts["distractors"] = len(of("distractor"))
    return counts


def _vehicleid_lists(test_ids: list[int]) -> dict[int, set[int]]:
    """Nested test lists: the first third, two thirds and all of the (sorted) test ids."""
    n = len(test_ids)
    return {800: set(test_ids[:max(1, round(n / 3))]), 1600: set(test_ids[:max(1, round(2 * n / 3))]),
            2400: set(test_ids)}


def write_layout(layout: str, root: Path, shots: list[Shot], images: dict[int, Image.Image],
                  rng: np.random.Generator) -> None:
    def save(image: Image.Image, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="JPEG", quality=_JPEG_QUALITY)

    if layout == "market1501":
        folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test",
                   "junk": "bounding_box_test", "distractor": "bounding_box_test"}
        for s in shots:
            pid = "-1" if s.pid == -1 else f"{s.pid:04d}"
            name = f"{pid}_c{s.cam + 1}s{s.key % 6 + 1}_{s.key * 25 + 1:06d}_{s.key % 7 + 1:02d}.jpg"
            save(images[s.key], root / folders[s.split] / name)
    elif layout == "veri":
        folders = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
        for s in shots:
            save(images[s.key], root / folders[s.split] / f"{s.pid:04d}_c{s.cam + 1:03d}_{s.key * 40 + 7:08d}_0.jpg")
    elif layout.startswith("msmt17"):
        train_dir, test_dir = ("mask_train_v2", "mask_test_v2") if layout == "msmt17_v2" else ("train", "test")
        lists: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
        per_pid: dict[tuple[str, int], int] = {}
        for s in shots:
            side = "train" if s.split in ("train", "val") else "test"
            n = per_pid.get((side, s.pid), 0)
            per_pid[(side, s.pid)] = n + 1
            daytime = ("morning", "noon", "afternoon")[s.key % 3]
            name = f"{s.pid:04d}_{n:03d}_{s.cam + 1:02d}_0{302 + s.key % 2}{daytime}_{s.key % 9000:04d}_{n % 4}.jpg"
            rel = f"{s.pid:04d}/{name}"
            save(images[s.key], root / (train_dir if side == "train" else test_dir) / rel)
            lists[s.split].append(f"{rel} {s.pid}")
        for name, lines in lists.items():
            (root / f"list_{name}.txt").write_text("".join(line + "\n" for line in lines))
    elif layout == "list":  # CSV list files with string labels (trials.data.listed)
        rows: dict[str, list[str]] = {"train": [], "query": [], "gallery": []}
        for s in shots:
            rel = f"images/{s.split}/{s.key:05d}.jpg"
            save(images[s.key], root / rel)
            rows[s.split].append(f"{rel},person{s.pid:04d},cam{s.cam + 1}")
        for split, lines in rows.items():
            (root / f"{split}.csv").write_text("path,pid,camid\n" + "".join(line + "\n" for line in lines))
        (root / "dataset.json").write_text('{"kind": "person"}\n')
    else:  # vehicleid
        image_ids = rng.permutation(len(shots)) + 1
        lines: dict[str, list[str]] = {"train": [], "test": []}
        by_key = {}
        for s, image_id in zip(shots, image_ids, strict=True):
            name = f"{int(image_id):07d}"
            by_key[s.key] = name
            save(images[s.key], root / "image" / f"{name}.jpg")
            lines[s.split].append(f"{name} {s.pid}")
        split_dir = root / "train_test_split"
        split_dir.mkdir(parents=True, exist_ok=True)
        (split_dir / "train_list.txt").write_text("".join(line + "\n" for line in lines["train"]))
        test_shots = [s for s in shots if s.split == "test"]
        for size, chosen in _vehicleid_lists(sorted({s.pid for s in test_shots})).items():
            text = "".join(f"{by_key[s.key]} {s.pid}\n" for s in test_shots if s.pid in chosen)
            (split_dir / f"test_list_{size}.txt").write_text(text)
