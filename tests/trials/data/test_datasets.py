"""The dataset parsers on tiny hand-made folders in the real layouts, and their errors on bad input."""

from pathlib import Path

import pytest
from PIL import Image

from trials.data import DATASETS, DatasetError, Sample, load_dataset, summarize, vehicleid_split


def touch_images(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 8), (120, 30, 200)).save(path)


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


# ------------------------------------------------------------------------------------------- Market-1501


@pytest.fixture
def market(tmp_path: Path) -> Path:
    root = tmp_path / "Market-1501-v15.09.15"
    touch_images(root / "bounding_box_train", [
        "0007_c1s1_000151_01.jpg", "0007_c3s1_000251_02.jpg", "0002_c2s1_000451_03.jpg", "0002_c6s2_001451_01.jpg",
        "1500_c5s3_012345_01.jpg",
    ])
    touch_images(root / "query", ["0003_c1s1_000001_00.jpg", "0004_c2s1_000002_00.jpg"])
    touch_images(root / "bounding_box_test", [
        "0003_c2s1_000101_01.jpg", "0004_c1s1_000102_01.jpg", "0003_c4s2_000103_01.jpg",
        "0000_c1s1_000104_01.jpg", "0000_c3s1_000105_02.jpg", "-1_c1s1_000106_01.jpg", "-1_c2s1_000107_01.jpg",
    ])
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")  # ships with the real archive
    return tmp_path


def test_market1501_relabels_train_ids_in_sorted_order_and_uses_zero_based_cameras(market: Path):
    ds = load_dataset("market1501", market)
    names = {Path(s.path).name: (s.pid, s.camid) for s in ds.train}
    assert names["0002_c2s1_000451_03.jpg"] == (0, 1)
    assert names["0007_c1s1_000151_01.jpg"] == (1, 0)
    assert names["1500_c5s3_012345_01.jpg"] == (2, 4)
    assert names["0002_c6s2_001451_01.jpg"] == (0, 5)
    assert ds.num_train_pids == 3 and ds.num_train_cams == 5
    assert ds.kind == "person" and ds.name == "market1501"
    assert all(isinstance(s, Sample) and Path(s.path).is_file() for s in ds.train + ds.query + ds.gallery)


def test_market1501_drops_junk_and_keeps_distractors_with_original_query_gallery_ids(market: Path):
    ds = load_dataset("market1501", market)
    assert sorted((s.pid, s.camid) for s in ds.query) == [(3, 0), (4, 1)]
    assert sorted(s.pid for s in ds.gallery) == [0, 0, 3, 3, 4]
    assert summarize(ds) == {
        "train": {"ids": 3, "images": 5, "cameras": 5},
        "query": {"ids": 2, "images": 2, "cameras": 2},
        "gallery": {"ids": 3, "images": 5, "cameras": 4},
    }


def test_market1501_accepts_the_dataset_folder_itself_as_data_dir(market: Path):
    assert summarize(load_dataset("market1501", market / "Market-1501-v15.09.15")) == summarize(
        load_dataset("market1501", market))


def test_market1501_missing_root_names_the_folder_and_the_synthesize_command(tmp_path: Path):
    with pytest.raises(DatasetError) as err:
        load_dataset("market1501", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "Market-1501-v15.09.15") in message
    assert "python -m trials.data synthesize --layout market1501" in message


def test_missing_data_dir_is_named(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist") as err:
        load_dataset("veri", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_market1501_missing_sub_folder_is_named(market: Path):
    (market / "Market-1501-v15.09.15" / "query").rename(market / "elsewhere")
    with pytest.raises(DatasetError) as err:
        load_dataset("market1501", market)
    assert "query/" in str(err.value) and str(market / "Market-1501-v15.09.15" / "query") in str(err.value)
    assert "synthesize" in str(err.value)


def test_empty_image_folder_is_an_error_not_an_empty_dataset(market: Path):
    folder = market / "Market-1501-v15.09.15" / "query"
    for path in folder.iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match="holds no images") as err:
        load_dataset("market1501", market)
    assert str(folder) in str(err.value)


def test_unparsable_file_names_are_counted_and_up_to_five_shown(market: Path):
    folder = market / "Market-1501-v15.09.15" / "bounding_box_train"
    bad = [f"person{i}.jpg" for i in range(7)] + ["0001_c0s1_000001_01.jpg"]
    touch_images(folder, bad)
    with pytest.raises(DatasetError) as err:
        load_dataset("market1501", market)
    message = str(err.value)
    assert "8 of 13 file names" in message and str(folder) in message
    assert sum(name in message for name in bad) == 5 and "..." in message


# ---------------------------------------------------------------------------------------------- VeRi-776


def test_veri_parses_names_and_relabels(tmp_path: Path):
    root = tmp_path / "VeRi"
    touch_images(root / "image_train", ["0005_c002_00016450_0.jpg", "0001_c001_00016455_0.jpg",
                                        "0005_c020_00016460_0.jpg"])
    touch_images(root / "image_query", ["0002_c003_00000001_0.jpg"])
    touch_images(root / "image_test", ["0002_c004_00000002_0.jpg", "0002_c003_00000003_1.jpg"])
    ds = load_dataset("veri", tmp_path)
    assert sorted((s.pid, s.camid) for s in ds.train) == [(0, 0), (1, 1), (1, 19)]
    assert ds.query == [Sample(str(root / "image_query" / "0002_c003_00000001_0.jpg"), 2, 2)]
    assert sorted(s.camid for s in ds.gallery) == [2, 3]
    assert ds.kind == "vehicle"


# ------------------------------------------------------------------------------------------------ MSMT17


def make_msmt(tmp_path: Path, folder: str = "MSMT17_V1", train_dir: str = "train", test_dir: str = "test") -> Path:
    root = tmp_path / folder
    train = ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_05_0303noon_0016_1.jpg 0",
             "0003/0003_000_15_0302afternoon_0101_0.jpg 3"]
    val = ["0001/0001_000_02_0303morning_0020_0.jpg 1"]
    query = ["0000/0000_000_07_0113morning_0001_0.jpg 0"]
    gallery = ["0000/0000_001_08_0113noon_0002_0.jpg 0", "0002/0002_000_07_0113noon_0003_0.jpg 2"]
    for name, lines, image_dir in (("train", train, train_dir), ("val", val, train_dir), ("query", query, test_dir),
                                   ("gallery", gallery, test_dir)):
        write_lines(root / f"list_{name}.txt", lines)
        touch_images(root / image_dir, [line.split()[0] for line in lines])
    return root


def test_msmt17_v1_reads_lists_train_is_train_plus_val_and_camera_is_third_field(tmp_path: Path):
    root = make_msmt(tmp_path)
    ds = load_dataset("msmt17", tmp_path)
    assert ds.root == str(root)
    train = {Path(s.path).name: (s.pid, s.camid) for s in ds.train}
    assert train == {
        "0000_000_01_0303morning_0015_0.jpg": (0, 0),
        "0000_001_05_0303noon_0016_1.jpg": (0, 4),
        "0001_000_02_0303morning_0020_0.jpg": (1, 1),
        "0003_000_15_0302afternoon_0101_0.jpg": (2, 14),
    }
    assert [(s.pid, s.camid) for s in ds.query] == [(0, 6)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(0, 7), (2, 6)]
    assert all(Path(s.path).is_file() for s in ds.train + ds.query + ds.gallery)
    assert load_dataset("msmt17_v1", tmp_path).train == ds.train


def test_msmt17_v2_layout_is_detected(tmp_path: Path):
    root = make_msmt(tmp_path, "MSMT17_V2", "mask_train_v2", "mask_test_v2")
    ds = load_dataset("msmt17", tmp_path)
    assert ds.root == str(root) and len(ds.train) == 4
    assert all("mask_test_v2" in s.path for s in ds.query + ds.gallery)
    assert load_dataset("msmt17_v2", tmp_path).gallery == ds.gallery


def test_msmt17_without_either_version_names_both_folders(tmp_path: Path):
    with pytest.raises(DatasetError) as err:
        load_dataset("msmt17", tmp_path)
    assert "MSMT17_V1" in str(err.value) and "MSMT17_V2" in str(err.value) and str(tmp_path) in str(err.value)


def test_msmt17_bad_list_line_names_file_and_line_number(tmp_path: Path):
    root = make_msmt(tmp_path)
    write_lines(root / "list_gallery.txt", ["0000/0000_001_08_0113noon_0002_0.jpg 0", "", "0002/oops.jpg two"])
    with pytest.raises(DatasetError) as err:
        load_dataset("msmt17", tmp_path)
    assert f"{root / 'list_gallery.txt'}, line 3" in str(err.value) and "oops.jpg" in str(err.value)


def test_msmt17_name_without_camera_field_is_a_bad_line(tmp_path: Path):
    root = make_msmt(tmp_path)
    write_lines(root / "list_query.txt", ["0000/0000.jpg 0"])
    with pytest.raises(DatasetError, match="list_query.txt, line 1"):
        load_dataset("msmt17", tmp_path)


def test_msmt17_missing_list_file_and_listed_but_absent_images(tmp_path: Path):
    root = make_msmt(tmp_path)
    (root / "list_val.txt").unlink()
    with pytest.raises(DatasetError, match="list_val.txt"):
        load_dataset("msmt17", tmp_path)
    write_lines(root / "list_val.txt", ["0009/0009_000_02_0303morning_0020_0.jpg 9"])
    with pytest.raises(DatasetError) as err:
        load_dataset("msmt17", tmp_path)
    assert "1 of 1 images listed" in str(err.value) and "0009_000_02" in str(err.value)


def test_msmt17_empty_list_is_an_error(tmp_path: Path):
    root = make_msmt(tmp_path)
    write_lines(root / "list_query.txt", [])
    with pytest.raises(DatasetError, match="lists no images"):
        load_dataset("msmt17", tmp_path)


# --------------------------------------------------------------------------------------------- VehicleID


@pytest.fixture
def vehicleid(tmp_path: Path) -> Path:
    root = tmp_path / "VehicleID"
    train = ["0000010 30", "0000011 30", "0000012 7"]
    test = ["0000020 5", "0000021 5", "0000022 5", "0000023 9", "0000024 9", "0000025 11"]
    touch_images(root / "image", [line.split()[0] + ".jpg" for line in train + test])
    write_lines(root / "train_test_split" / "train_list.txt", train)
    write_lines(root / "train_test_split" / "test_list_800.txt", test[:3])
    write_lines(root / "train_test_split" / "test_list_1600.txt", test[:5])
    write_lines(root / "train_test_split" / "test_list_2400.txt", test)
    return tmp_path


def test_vehicleid_reads_lists_without_cameras_and_keeps_the_test_list(vehicleid: Path):
    ds = load_dataset("vehicleid", vehicleid, test_size=2400)
    assert sorted((Path(s.path).name, s.pid, s.camid) for s in ds.train) == [
        ("0000010.jpg", 1, 0), ("0000011.jpg", 1, 0), ("0000012.jpg", 0, 0)]
    assert [s.pid for s in ds.test] == [5, 5, 5, 9, 9, 11]
    assert {s.camid for s in ds.test} == {0}
    assert ds.num_train_cams == 1 and ds.kind == "vehicle"
    assert (ds.query, ds.gallery) == vehicleid_split(ds.test, 0)
    assert len(load_dataset("vehicleid", vehicleid).test) == 6  # test_size 2400 by default
    assert len(load_dataset("vehicleid", vehicleid, test_size=800).test) == 3
    assert len(load_dataset("vehicleid", vehicleid, test_size=1600).test) == 5


def test_vehicleid_split_draws_one_gallery_image_per_id_by_seed():
    test = [Sample(f"{i}.jpg", pid, 0) for i, pid in enumerate([5, 5, 5, 9, 9, 11, 12, 12, 12, 12])]
    draws = set()
    for seed in range(10):
        query, gallery = vehicleid_split(test, seed)
        assert sorted(s.pid for s in gallery) == [5, 9, 11, 12]
        assert sorted(query + gallery) == sorted(test)
        assert 11 not in {s.pid for s in query}  # a single-image id has nothing to query with
        assert vehicleid_split(test, seed) == (query, gallery)
        draws.add(tuple(gallery))
    assert len(draws) > 1


def test_vehicleid_bad_line_and_bad_test_size(vehicleid: Path):
    split = vehicleid / "VehicleID" / "train_test_split"
    write_lines(split / "train_list.txt", ["0000010 30", "0000011"])
    with pytest.raises(DatasetError) as err:
        load_dataset("vehicleid", vehicleid)
    assert f"{split / 'train_list.txt'}, line 2" in str(err.value)
    with pytest.raises(DatasetError, match="800, 1600, 2400"):
        load_dataset("vehicleid", vehicleid, test_size=1000)


# ---------------------------------------------------------------------------------------------- registry


def test_registry_names():
    assert set(DATASETS) == {"market1501", "msmt17", "msmt17_v1", "msmt17_v2", "veri", "vehicleid"}


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path):
    with pytest.raises(DatasetError) as err:
        load_dataset("duke", tmp_path)
    assert "'duke'" in str(err.value) and all(name in str(err.value) for name in DATASETS)


def test_unknown_option_is_named(market: Path):
    with pytest.raises(DatasetError, match="test_size"):
        load_dataset("market1501", market, test_size=800)
