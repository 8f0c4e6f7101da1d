"""`python -m trials.data summary|synthesize`: JSON summary, readable output, errors without tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trials.data import synthesize
from trials.data.__main__ import main

ROOT = Path(__file__).resolve().parents[3]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trials.data", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_summary_json_matches_what_the_generator_wrote(tmp_path: Path):
    counts = synthesize("market1501", tmp_path, ids=6, seed=2)
    result = run_cli("summary", "--dataset", "market1501", "--data-dir", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {split: counts[split] for split in ("train", "query", "gallery")}
    assert set(json.loads(result.stdout)["train"]) == {"ids", "images", "cameras"}


@pytest.mark.slow
def test_errors_are_one_paragraph_on_stderr_with_exit_status_2(tmp_path: Path):
    result = run_cli("summary", "--dataset", "veri", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert str(tmp_path / "VeRi") in result.stderr and "python -m trials.data synthesize" in result.stderr


def test_unknown_dataset_exits_2_listing_the_known_ones(tmp_path: Path, capsys):
    assert main(["summary", "--dataset", "cuhk03", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cuhk03" in err and "market1501" in err and "vehicleid" in err


def test_synthesize_prints_what_it_wrote_and_summary_table_agrees(tmp_path: Path, capsys):
    assert main(["synthesize", "--layout", "vehicleid", "--out", str(tmp_path), "--ids", "6", "--seed", "1",
                 "--image-size", "32x32", "--domain", "B"]) == 0
    wrote = capsys.readouterr().out
    assert str(tmp_path / "VehicleID") in wrote and "test_list_2400.txt" in wrote
    assert main(["summary", "--dataset", "vehicleid", "--data-dir", str(tmp_path), "--test-size", "2400"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[2].split() == wrote.splitlines()[2].split()  # the train row
    assert main(["summary", "--dataset", "vehicleid", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[3:] == wrote.splitlines()[3:5]  # query, gallery of list 2400
