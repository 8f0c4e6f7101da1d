"""Code a user wrote for a dataset (a loader named by import path, a registered loader, the module it lives
in) that fails is one error naming the loader, the dataset and the exception: from load_dataset, from the
standalone trial and from the launch's driver, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from trials.data import load_dataset
from trials.data.registry import REGISTERED, register_dataset
from trials.dataset_names import LoaderError, dataset_kind

ROOT = Path(__file__).resolve().parents[3]
MODULE = """
def raises(data_dir):
    return {}["no such key"]

def returns_none(data_dir):
    return None

def says_why(data_dir):
    from trials.dataset_names import DatasetError
    raise DatasetError("the index file is missing")
"""
CASES = [  # (loader, what the message says)
    ("broken_reid_loaders:raises", "loader broken_reid_loaders.raises raised KeyError: 'no such key' ("),
    ("broken_reid_loaders:returns_none", "loader broken_reid_loaders.returns_none must return (train, query, "
                                         "gallery), got NoneType"),
    ("broken_reid_loaders:says_why", "loader broken_reid_loaders.says_why reported: the index file is missing"),
    ("raises_on_import:load", "importing the module raises_on_import raised ZeroDivisionError: division by zero"),
]


@pytest.fixture
def code(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "broken_reid_loaders.py").write_text(MODULE)
    (folder / "raises_on_import.py").write_text("RATIO = 1 / 0\n\ndef load(data_dir):\n    return [], [], []\n")
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.mark.parametrize("name, expected", CASES)
def test_a_failing_loader_is_one_error_naming_loader_dataset_and_exception(code, tmp_path, name, expected):
    with pytest.raises(LoaderError) as caught:
        load_dataset(name, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"dataset {name!r}: ") and expected in message
    if "raises" in name:
        assert str(code) in message  # where in the user's code it raised


def test_a_registered_loader_that_raises_is_named_too(tmp_path):
    def load_mine(data_dir):
        raise RuntimeError("the server holding the images is down")

    register_dataset("mine_failing", load_mine, kind="vehicle")
    try:
        assert dataset_kind("mine_failing", tmp_path) == "vehicle"
        with pytest.raises(LoaderError, match=r"dataset 'mine_failing': its loader .*load_mine raised RuntimeError: "
                                              r"the server holding the images is down"):
            load_dataset("mine_failing", tmp_path)
    finally:
        REGISTERED.pop("mine_failing")


@pytest.mark.parametrize("name, expected", CASES[:2])
def test_the_standalone_trial_says_which_loader_failed(code, tmp_path, capsys, name, expected):
    from trials.runtime.cli import main
    from trials.search import run_search

    with pytest.raises(SystemExit) as stop:
        main("search", run_search, ["--scale", "smoke", "--dataset", name, "--data-dir", str(tmp_path), "--out",
                                    str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: dataset {name!r}: ") and expected in err, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_the_launch_names_the_failing_loader_before_any_trial(code, tmp_path):
    run_dir = tmp_path / "runs"
    done = subprocess.run([sys.executable, "platform/launch.py", "--study", "in_domain", "--scale", "smoke",
                           "--data-dir", str(tmp_path), "--run-dir", str(run_dir), "--set",
                           "dataset=broken_reid_loaders:raises"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(code)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    message = done.stderr.strip()
    assert message.startswith("error: data: study 'in_domain' reads broken_reid_loaders:raises") and "\n" not in message
    assert CASES[0][1] in message and "--synthetic" not in message
    assert not (run_dir / "tune").exists()
