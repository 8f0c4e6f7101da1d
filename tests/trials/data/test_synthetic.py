"""Synthetic stand-in data: written in the real layouts, loaded by the real parsers with exactly the counts
the generator reports, deterministic per seed, two distinct domains, and learnable but not trivial."""

import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trials.data import DatasetError, load_dataset, summarize, synthesize

LAYOUT_DATASET = {"market1501": "market1501", "msmt17": "msmt17", "msmt17_v2": "msmt17_v2", "veri": "veri",
                  "vehicleid": "vehicleid"}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Each layout written once, small: 8 ids."""
    out = {}
    for layout in LAYOUT_DATASET:
        folder = tmp_path_factory.mktemp(layout)
        out[layout] = (folder, synthesize(layout, folder, ids=8, seed=11))
    return out


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", list(LAYOUT_DATASET))
def test_parser_reports_exactly_the_counts_the_generator_wrote(written, layout):
    folder, counts = written[layout]
    dataset = load_dataset(LAYOUT_DATASET[layout], folder)
    assert summarize(dataset) == {split: counts[split] for split in ("train", "query", "gallery")}
    assert dataset.root == counts["root"]
    assert counts["train"]["ids"] == 4 and sorted({s.pid for s in dataset.train}) == [0, 1, 2, 3]


def test_folder_layouts_are_the_real_ones(written):
    assert {p.name for p in (written["market1501"][0] / "Market-1501-v15.09.15").iterdir()} >= {
        "bounding_box_train", "query", "bounding_box_test"}
    msmt = written["msmt17"][0] / "MSMT17_V1"
    assert {p.name for p in msmt.iterdir()} >= {"train", "test", "list_train.txt", "list_val.txt",
                                                "list_query.txt", "list_gallery.txt"}
    assert {p.name for p in (written["msmt17_v2"][0] / "MSMT17_V2").iterdir()} >= {"mask_train_v2", "mask_test_v2"}
    assert {p.name for p in (written["veri"][0] / "VeRi").iterdir()} >= {"image_train", "image_query", "image_test"}
    split = written["vehicleid"][0] / "VehicleID" / "train_test_split"
    assert {p.name for p in split.iterdir()} == {"train_list.txt", "test_list_800.txt", "test_list_1600.txt",
                                                 "test_list_2400.txt"}
    image = Image.open(next((written["veri"][0] / "VeRi" / "image_train").iterdir()))
    assert image.size == (64, 64) and image.mode == "RGB"
    image = Image.open(next((written["market1501"][0] / "Market-1501-v15.09.15" / "query").iterdir()))
    assert image.size == (32, 64)


def test_market_has_junk_dropped_at_load_and_distractors_kept_in_the_gallery(written):
    folder, counts = written["market1501"]
    names = [p.name for p in (folder / "Market-1501-v15.09.15" / "bounding_box_test").iterdir()]
    assert sum(n.startswith("-1_") for n in names) == counts["junk"] >= 2
    assert sum(n.startswith("0000_") for n in names) == counts["distractors"] >= 2
    dataset = load_dataset("market1501", folder)
    assert sum(s.pid == 0 for s in dataset.gallery) == counts["distractors"]
    assert len(dataset.gallery) == len(names) - counts["junk"]


@pytest.mark.parametrize("layout", ["market1501", "msmt17", "veri"])
def test_train_and_test_ids_are_disjoint_and_every_query_has_a_cross_camera_match(written, layout):
    dataset = load_dataset(LAYOUT_DATASET[layout], written[layout][0])
    gallery = defaultdict(set)
    for s in dataset.gallery:
        gallery[s.pid].add(s.camid)
    by_camera = defaultdict(int)
    for s in dataset.query:
        by_camera[(s.pid, s.camid)] += 1
        assert gallery[s.pid] - {s.camid}
    assert set(by_camera.values()) == {1}  # one query image per id per camera
    if layout != "msmt17":  # MSMT17 numbers train and test ids separately, as the real lists do
        train_names = {Path(s.path).name.split("_")[0] for s in dataset.train}
        assert not train_names & {Path(s.path).name.split("_")[0] for s in dataset.query}


def test_vehicleid_test_lists_are_nested_and_query_gallery_follow_the_protocol(written):
    folder, counts = written["vehicleid"]
    sizes = {size: load_dataset("vehicleid", folder, test_size=size) for size in (800, 1600, 2400)}
    ids = {size: {s.pid for s in ds.test} for size, ds in sizes.items()}
    assert ids[800] <= ids[1600] <= ids[2400] and len(ids[800]) < len(ids[2400]) == 4
    for size, ds in sizes.items():
        assert counts["test_lists"][str(size)] == {"ids": len(ids[size]), "images": len(ds.test)}
    assert not ids[2400] & {s.pid for s in sizes[2400].train}


def test_same_seed_gives_byte_identical_files(tmp_path: Path):
    for layout in ("market1501", "veri"):
        a = synthesize(layout, tmp_path / "a", ids=6, seed=3)
        b = synthesize(layout, tmp_path / "b", ids=6, seed=3)
        assert {k: v for k, v in a.items() if k != "root"} == {k: v for k, v in b.items() if k != "root"}
        digest = tree_digest(Path(a["root"]))
        assert digest == tree_digest(Path(b["root"])) and len(digest) > 40


def mean_image(folder: Path) -> np.ndarray:
    return np.mean([np.asarray(Image.open(p), dtype=float) for p in sorted(folder.rglob("*.jpg"))], axis=0)


def test_domains_and_seeds_render_differently(tmp_path: Path):
    a = Path(synthesize("market1501", tmp_path / "a", ids=6, seed=3, domain="A")["root"])
    b = Path(synthesize("market1501", tmp_path / "b", ids=6, seed=3, domain="B")["root"])
    other_seed = Path(synthesize("market1501", tmp_path / "c", ids=6, seed=4, domain="A")["root"])
    assert mean_image(b).mean() < mean_image(a).mean() - 30  # B: darker scenes
    first = sorted((a / "query").iterdir())[0].read_bytes()
    assert first not in {p.read_bytes() for p in (b / "query").iterdir()}
    assert first not in {p.read_bytes() for p in (other_seed / "query").iterdir()}
    msmt = Path(synthesize("msmt17", tmp_path / "d", ids=6, seed=3)["root"])
    assert not {p.read_bytes() for p in (a / "query").iterdir()} & {p.read_bytes() for p in msmt.rglob("*.jpg")}


def test_image_size_option(tmp_path: Path):
    counts = synthesize("vehicleid", tmp_path, ids=4, seed=0, image_size=(40, 48))
    image = Image.open(next((Path(counts["root"]) / "image").iterdir()))
    assert image.size == (48, 40)


def test_same_arguments_reuse_the_folder_and_others_need_overwrite(tmp_path: Path):
    first = synthesize("veri", tmp_path, ids=4, seed=1)
    stamp = {p: p.stat().st_mtime_ns for p in Path(first["root"]).rglob("*")}
    assert synthesize("veri", tmp_path, ids=4, seed=1) == first
    assert {p: p.stat().st_mtime_ns for p in Path(first["root"]).rglob("*")} == stamp
    with pytest.raises(DatasetError, match="other arguments.*overwrite"):
        synthesize("veri", tmp_path, ids=4, seed=2)
    second = synthesize("veri", tmp_path, ids=4, seed=2, overwrite=True)
    assert summarize(load_dataset("veri", tmp_path))["train"] == second["train"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_refuses_to_touch_a_folder_it_did_not_write(tmp_path: Path):
    (tmp_path / "VeRi" / "image_train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not written by `synthesize`"):
        synthesize("veri", tmp_path, ids=4, seed=1, overwrite=True)
    assert (tmp_path / "VeRi" / "image_train").is_dir()


@pytest.mark.parametrize("kwargs, field", [({"layout": "duke"}, "layout"), ({"domain": "C"}, "domain"),
                                           ({"ids": 3}, "ids"), ({"seed": -1}, "seed"),
                                           ({"image_size": (8, 8)}, "image_size")])
def test_bad_arguments_are_named(tmp_path: Path, kwargs, field):
    arguments = {"layout": "market1501", "out": tmp_path, **kwargs}
    with pytest.raises(DatasetError, match=field):
        synthesize(**arguments)


def pixel_features(samples, size) -> np.ndarray:
    x = np.stack([np.asarray(Image.open(s.path).resize(size, Image.BILINEAR), dtype=float).ravel()
                  for s in samples])
    x -= x.mean(1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def nearest_neighbour_rank1(dataset) -> float:
    """Rank-1 of raw downsampled pixels under the Market-1501 protocol (same id + camera removed)."""
    sims = pixel_features(dataset.query, (8, 16)) @ pixel_features(dataset.gallery, (8, 16)).T
    g_pid = np.array([s.pid for s in dataset.gallery])
    g_cam = np.array([s.camid for s in dataset.gallery])
    hits = []
    for row, q in zip(sims, dataset.query, strict=True):
        keep = ~((g_pid == q.pid) & (g_cam == q.camid))
        hits.append(g_pid[keep][np.argmax(row[keep])] == q.pid)
    return float(np.mean(hits))


@pytest.mark.parametrize("domain", ["A", "B"])
def test_identities_are_learnable_from_pixels_but_not_trivially(tmp_path: Path, domain):
    synthesize("market1501", tmp_path, seed=0, domain=domain)  # the default size: 24 ids, 12 for testing
    dataset = load_dataset("market1501", tmp_path)
    chance = 1 / len({s.pid for s in dataset.gallery})
    rank1 = nearest_neighbour_rank1(dataset)
    assert 3 * chance < rank1 < 0.9
