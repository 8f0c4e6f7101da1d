"""Every text file a user hands over that is not UTF-8 or does not parse is one `error:` paragraph naming the
file and the line, exit status 2, no traceback: list CSVs, dataset.json, MSMT17 and VehicleID list files,
study YAML, genotype JSON, latency tables, image lists."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import error_of
from trials.data import synthesize
from trials.text_files import TextFileError, read_json, read_text

ROOT = Path(__file__).resolve().parents[2]
LATIN1 = "caf\xe9".encode("latin-1")  # one byte that is not UTF-8


def test_read_text_and_read_json_name_file_line_and_column(tmp_path: Path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"fine\nstill fine\nbad " + LATIN1 + b"\n")
    with pytest.raises(TextFileError, match=r"f.txt, line 3: the list is not UTF-8 text \(byte 0xe9 at column 8\)"):
        read_text(path, "list")
    path.write_bytes(b"\xef\xbb\xbfwith a byte-order mark\n")
    assert read_text(path) == "with a byte-order mark\n"
    path.write_text('{\n  "a": 1,\n  "b": oops\n}\n')
    with pytest.raises(TextFileError, match=r"line 3: the table is not valid JSON \(Expecting value at column 8\)"):
        read_json(path, "table")
    with pytest.raises(TextFileError, match="cannot be read"):
        read_text(tmp_path / "missing.json")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text-files")
    for layout in ("msmt17", "vehicleid", "list"):
        synthesize(layout, root, ids=4, seed=0)
    return root


def _corrupt(path: Path, line: int, payload: bytes) -> None:
    """Replace line `line` (1-based) of a text file by `payload`."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[line - 1] = payload + b"\n"
    path.write_bytes(b"".join(lines))


DATA_FILES = [  # (file under the data folder, dataset name, line replaced, new bytes, expected)
    ("custom/train.csv", "list:custom", 3, b"img/" + LATIN1 + b".png,a,c1", "line 3: the list file is not UTF-8"),
    ("custom/gallery.csv", "list:custom", 2, b'"img/open.png,a,c1', "line 2: expected 3 fields"),
    ("custom/dataset.json", "list:custom", 1, b'{"kind": vehicle}', "line 1: the dataset.json is not valid JSON"),
    ("custom/dataset.json", "list:custom", 1, b'{"kind": "' + LATIN1 + b'"}', "line 1: the dataset.json is not UTF-8"),
    ("MSMT17_V1/list_query.txt", "msmt17", 2, LATIN1 + b"/x.jpg 3", "line 2: the list file is not UTF-8"),
    ("VehicleID/train_test_split/train_list.txt", "vehicleid", 4, b"00" + LATIN1 + b" 7",
     "line 4: the list file is not UTF-8"),
]


@pytest.mark.parametrize("file, name, line, payload, expected", DATA_FILES)
def test_dataset_files_name_file_and_line(data, tmp_path, capsys, file, name, line, payload, expected):
    from trials.data.__main__ import main

    copy = tmp_path / "data"
    shutil.copytree(data, copy, symlinks=True)
    target = copy / file
    if not target.exists():
        target.write_text("{}\n")
    _corrupt(target, line, payload)
    err = error_of(main, ["summary", "--dataset", name, "--data-dir", str(copy), "--no-image-check"], capsys)
    assert f"{target}, {expected}" in err


@pytest.mark.parametrize("payload, expected", [
    (b'{"ops": ["ag", "ag",\n  "exc" "ag"]}', "line 2: the genotype file is not valid JSON"),
    (b'{"ops": "' + LATIN1 + b'"}', "line 1: the genotype file is not UTF-8"),
    (b'{"ops": ["ag"]}', "a genotype has 12 operations"),
])
def test_genotype_files_name_file_and_line(tmp_path, capsys, payload, expected):
    from trials.evaluate import main

    genotype = tmp_path / "genotype.json"
    genotype.write_bytes(payload)
    err = error_of(main, ["--dataset", "market1501", "--data-dir", str(tmp_path), "--genotype", str(genotype)], capsys)
    assert f"{genotype}" in err and expected in err


def test_a_latency_table_names_file_and_line(synthetic_root, tmp_path, capsys):
    from trials.runtime.cli import main

    table = tmp_path / "table.json"
    table.write_bytes(b'{"fixed_ms": 1.0,\n "slot_ms": [' + LATIN1 + b"]}\n")
    err = error_of(lambda argv: main("search", __import__("trials.search").search.run_search, argv),
                ["--scale", "smoke", "--data-dir", str(synthetic_root), "--epochs", "1", "--out", str(tmp_path / "out"),
                 "--set", f"latency_table={table}"], capsys)
    assert f"{table}, line 2: the latency table is not UTF-8" in err


def test_an_image_list_names_file_and_line(tmp_path, capsys):
    from trials.extract import main

    listing = tmp_path / "images.txt"
    listing.write_bytes(b"# images\n" + LATIN1 + b".jpg\n")
    err = error_of(main, ["--weights", str(tmp_path / "model.pt"), "--images", str(listing), "--out",
                       str(tmp_path / "f.npz")], capsys)
    assert f"{listing}, line 2: the image list is not UTF-8" in err


@pytest.mark.parametrize("payload, expected", [
    (b"description: fine\nphases:\n  search: {kind: search\n", "line 4: the study file is not valid YAML"),
    (b"description: caf" + LATIN1 + b"\n", "line 1: the study file is not UTF-8"),
    (b"description: x\nphases:\n\tsearch: {}\n", "line 3: the study file is not valid YAML"),
])
def test_study_files_name_file_and_line(tmp_path, payload, expected):
    study = tmp_path / "bad.yaml"
    study.write_bytes(payload)
    done = subprocess.run([sys.executable, "platform/launch.py", "--study", str(study), "--dry-run", "--run-dir",
                           str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr, done.stderr
    assert f"{study}, {expected}" in done.stderr
