"""List-file datasets (`list:PATH`) and loaders written in Python: labels, protocol, and each error named."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from trials.config import ConfigError, make_config
from trials.data import DATASETS, DatasetError, load_dataset, summarize, synthesize
from trials.data.registry import REGISTERED, register_dataset

ROOT = Path(__file__).resolve().parents[3]


def make_list(folder: Path, files: dict[str, str], images: bool = True) -> Path:
    """Write the CSV texts in `files` and a small image for every path they list."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
        for line in text.splitlines()[1:]:
            rel = line.split(",")[0]
            if images and rel and not (folder / rel).exists():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (16, 32), (len(rel) * 9 % 255, 80, 120)).save(folder / rel)
    return folder


GOOD = {
    "train.csv": "path,pid,camid\nimg/t1.png,zoe,north\nimg/t2.png,zoe,south\nimg/t3.png,id10,north\n"
                 "img/t4.png,id2,south\n",
    "query.csv": "path,pid,camid\nimg/q1.png,bob,north\nimg/q2.png,al,south\n",
    "gallery.csv": "path,pid,camid\nimg/g1.png,bob,south\nimg/g2.png,al,north\nimg/g3.png,al,south\n"
                   "img/g4.png,stranger,north\n",
}


def test_string_labels_become_integers_and_query_gallery_share_one_mapping(tmp_path: Path):
    make_list(tmp_path / "mine", GOOD)
    dataset = load_dataset("list:mine", tmp_path)
    assert dataset.name == "list:mine" and dataset.listed and dataset.kind == "person"
    # natural order of the train labels: id2, id10, zoe
    assert [s.pid for s in dataset.train] == [2, 2, 1, 0]
    assert [Path(s.path).name for s in dataset.train] == ["t1.png", "t2.png", "t3.png", "t4.png"]  # file order
    ids = {Path(s.path).name: s.pid for s in dataset.query + dataset.gallery}
    assert ids["q1.png"] == ids["g1.png"] != ids["q2.png"] == ids["g2.png"] == ids["g3.png"] != ids["g4.png"]
    cams = {Path(s.path).name: s.camid for s in dataset.train + dataset.query + dataset.gallery}
    assert cams["t1.png"] == cams["q1.png"] == cams["g2.png"] != cams["t2.png"] == cams["g1.png"]
    # an absolute PATH works too, whatever the data directory
    assert summarize(load_dataset(f"list:{tmp_path / 'mine'}", "/nonexistent")) == summarize(dataset)


def test_without_camid_every_image_is_camera_zero(tmp_path: Path):
    files = {name: "\n".join(",".join(line.split(",")[:2]) for line in text.splitlines()) + "\n"
             for name, text in GOOD.items()}
    make_list(tmp_path / "nocam", files)
    dataset = load_dataset("list:nocam", tmp_path)
    assert {s.camid for s in dataset.train + dataset.query + dataset.gallery} == {0}


def test_dataset_json_declares_vehicles(tmp_path: Path):
    folder = make_list(tmp_path / "cars", GOOD)
    (folder / "dataset.json").write_text('{"kind": "vehicle"}')
    assert load_dataset("list:cars", tmp_path).kind == "vehicle"
    cfg = make_config("retrain", {"dataset": "list:cars", "data_dir": str(tmp_path), "height": 64})
    assert cfg.vehicle and cfg.image_size == (64, 64)
    (folder / "dataset.json").write_text('{"kind": "bicycle"}')
    with pytest.raises(DatasetError, match="dataset.json"):
        load_dataset("list:cars", tmp_path)


def test_the_synthesizer_writes_a_list_dataset_the_loader_reads(tmp_path: Path):
    counts = synthesize("list", tmp_path, ids=8, seed=3)
    dataset = load_dataset("list:custom", tmp_path)
    assert summarize(dataset) == {k: counts[k] for k in ("train", "query", "gallery")}
    header = (tmp_path / "custom" / "train.csv").read_text().splitlines()[0]
    assert header == "path,pid,camid"


def _error(tmp_path: Path, changes: dict[str, str], images: bool = True) -> str:
    make_list(tmp_path / "bad", {**GOOD, **changes}, images=images)
    with pytest.raises(DatasetError) as caught:
        load_dataset("list:bad", tmp_path)
    return str(caught.value)


def test_missing_column_names_file_and_line(tmp_path: Path):
    message = _error(tmp_path, {"train.csv": "path,person\nimg/t1.png,zoe\n"})
    assert f"{tmp_path / 'bad' / 'train.csv'}, line 1" in message and "missing column(s) pid" in message


def test_listed_but_absent_image_names_file_and_line(tmp_path: Path):
    make_list(tmp_path / "bad", GOOD)
    (tmp_path / "bad" / "query.csv").write_text(GOOD["query.csv"] + "img/gone.png,bob,south\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset("list:bad", tmp_path)
    assert f"{tmp_path / 'bad' / 'query.csv'}, line 4" in str(caught.value) and "img/gone.png" in str(caught.value)


def test_query_id_without_gallery_match_names_file_and_line(tmp_path: Path):
    message = _error(tmp_path, {"query.csv": GOOD["query.csv"] + "img/q3.png,carol,north\n"})
    assert f"{tmp_path / 'bad' / 'query.csv'}, line 4" in message and "'carol'" in message


def test_duplicate_paths_name_both_lines(tmp_path: Path):
    message = _error(tmp_path, {"gallery.csv": GOOD["gallery.csv"] + "img/g2.png,al,north\n"})
    assert f"{tmp_path / 'bad' / 'gallery.csv'}, line 6" in message and "line 3" in message
    message = _error(tmp_path, {"query.csv": GOOD["query.csv"] + "img/g3.png,al,north\n"})
    assert "query.csv, line 4" in message and "also in the gallery" in message


def test_camid_for_some_rows_only_names_the_first_row_without(tmp_path: Path):
    message = _error(tmp_path, {"train.csv": GOOD["train.csv"] + "img/t5.png,zoe,\n"})
    assert f"{tmp_path / 'bad' / 'train.csv'}, line 6" in message and "camid" in message


def test_missing_folder_and_missing_file(tmp_path: Path):
    with pytest.raises(DatasetError, match="does not exist.*synthesize --layout list"):
        load_dataset("list:nowhere", tmp_path)
    make_list(tmp_path / "two", {k: v for k, v in GOOD.items() if k != "gallery.csv"})
    with pytest.raises(DatasetError, match="gallery.csv: list file not found"):
        load_dataset("list:two", tmp_path)


def test_bad_names_fail_in_the_trial_config():
    for name, needle in (("list:", "names no folder"), ("duke", "list:PATH"), ("market1501+", "unknown dataset ''"),
                         ("market1501+market1501", "named twice")):
        with pytest.raises(ConfigError, match=needle):
            make_config("retrain", {"dataset": name})
    with pytest.raises(ConfigError, match="target_dataset"):
        make_config("retrain", {"target_dataset": "market1501+veri"})
    assert make_config("retrain", {"dataset": ["market1501", "msmt17"]}).dataset == "market1501+msmt17"


@pytest.mark.slow
def test_summary_and_error_from_the_command_line(tmp_path: Path):
    make_list(tmp_path / "mine", GOOD)
    done = subprocess.run([sys.executable, "-m", "trials.data", "summary", "--dataset", "list:mine", "--data-dir",
                           str(tmp_path), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["gallery"] == {"ids": 3, "images": 4, "cameras": 2}
    (tmp_path / "mine" / "query.csv").write_text("path,pid,camid\nimg/q1.png,nobody,north\n")
    done = subprocess.run([sys.executable, "-m", "trials.data", "summary", "--dataset", "list:mine", "--data-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "query.csv, line 2" in done.stderr
    assert "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- loaders written in Python


def _rows(folder: Path):
    def split(name):  # paths relative to the data directory
        return [(f"{folder.name}/{path}", pid, cam) for path, pid, cam in
                (line.split(",") for line in (folder / name).read_text().splitlines()[1:])]
    return split("train.csv"), split("query.csv"), split("gallery.csv")


def test_register_dataset_in_process(tmp_path: Path):
    folder = make_list(tmp_path / "mine", GOOD)
    register_dataset("mine_registered", lambda data_dir: _rows(Path(data_dir) / "mine"))
    try:
        dataset = load_dataset("mine_registered", tmp_path)
        assert summarize(dataset) == summarize(load_dataset("list:mine", tmp_path))
        assert dataset.root == str(tmp_path) and str(folder) in dataset.train[0].path
    finally:
        REGISTERED.pop("mine_registered")
    with pytest.raises(DatasetError, match="cannot be a dataset name"):
        register_dataset("a+b", lambda data_dir: ([], [], []))


def test_import_path_loader_and_its_errors(tmp_path: Path, monkeypatch):
    make_list(tmp_path / "mine", GOOD)
    package = tmp_path / "code"
    package.mkdir()
    (package / "my_reid_loader.py").write_text(
        "def load_mine(data_dir):\n"
        "    import csv, os\n"
        "    def read(name):\n"
        "        with open(os.path.join(data_dir, 'mine', name)) as f:\n"
        "            return [(r['path'], r['pid'], r['camid']) for r in csv.DictReader(f)]\n"
        "    return read('train.csv'), read('query.csv'), read('gallery.csv')\n"
        "load_mine.kind = 'vehicle'\n"
        "def load_broken(data_dir):\n"
        "    return [('mine/img/t1.png', 'a', None)], [('mine/img/q1.png', 'x', None)], "
        "[('mine/img/g1.png', 'y', None)]\n")
    monkeypatch.syspath_prepend(str(package))
    (tmp_path / "img").symlink_to(tmp_path / "mine" / "img")  # the loader's paths are relative to data_dir
    dataset = load_dataset("my_reid_loader:load_mine", tmp_path)
    assert dataset.kind == "vehicle" and summarize(dataset)["query"]["ids"] == 2
    assert make_config("retrain", {"dataset": "my_reid_loader:load_mine", "data_dir": str(tmp_path)}).vehicle
    with pytest.raises(DatasetError, match="query sample 0: id 'x' is in no gallery image"):
        load_dataset("my_reid_loader:load_broken", tmp_path)
    with pytest.raises(DatasetError, match="cannot import no_such_module_here"):
        load_dataset("no_such_module_here:load", tmp_path)
    with pytest.raises(DatasetError, match="has no function nothing"):
        load_dataset("my_reid_loader:nothing", tmp_path)


def test_name_checks_know_the_builtin_layouts_without_importing_them():
    from trials.dataset_names import BUILTIN

    assert set(BUILTIN) == set(DATASETS)
    code = ("import sys; from trials.config import make_config; from trials.dataset_names import dataset_kind; "
            "make_config('retrain', {'dataset': 'list:x+veri'}); dataset_kind('list:x+market1501', '.'); "
            "assert 'torch' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
