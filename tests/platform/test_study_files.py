"""The driver reads every file a study names (latency tables, genotypes, the weights a retrain starts from)
before any trial starts, as the trials will read them: a bad one is one `error:` paragraph naming the phase,
the field and the file, from --dry-run too."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import study_files
from study_spec import load_study, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "spaces" / "latency_tables" / "cpu-256x128-b1.json"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    table = json.loads(TABLE.read_text())
    short = dict(table, slot_ms=table["slot_ms"][:3])
    made = {"truncated.json": TABLE.read_text()[:200], "short.json": json.dumps(short),
            "latin1.json": b'{"ops": "caf\xe9"}', "eleven.json": json.dumps({"ops": ["ag"] * 11}),
            "text.pt": "not a pickle", "empty.pt": ""}
    for name, content in made.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return {name: tmp_path / name for name in made}


def _problem(study: str, *pairs: str) -> str:
    loaded = load_study(study, "smoke", parse_overrides(list(pairs)))
    with pytest.raises(study_files.FileError) as caught:
        study_files.check_files(loaded)
    return str(caught.value)


@pytest.mark.parametrize("pair, expected", [
    ("latency_table={truncated.json}", "{truncated.json}, line 11: the latency table is not valid JSON"),
    ("latency_table={short.json}", "{short.json}: expected fixed_ms, operations"),
    ("retrain.config.genotype={latin1.json}", "{latin1.json}, line 1: the genotype file is not UTF-8"),
    ("retrain.config.genotype={eleven.json}", "{eleven.json}: a genotype has 12 operations"),
    ("retrain.config.genotype=ag-ag/ag", "malformed genotype text 'ag-ag/ag'"),
    ("retrain.config.pretrained={text.pt}", "pretrained {text.pt}: not a weights file to start from"),
    ("retrain.config.pretrained={empty.pt}", "pretrained {empty.pt}: not a weights file to start from"),
])
def test_each_bad_file_given_with_set_is_named_by_its_set_pair(files, pair, expected):
    for name, path in files.items():
        pair, expected = pair.replace("{" + name + "}", str(path)), expected.replace("{" + name + "}", str(path))
    message = _problem("in_domain", pair)
    assert expected in message and message.startswith(f"--set {pair}: "), message


def test_grid_values_are_read_too(files):
    message = _problem("in_domain", f"retrain.grid.genotype=[msmt, {files['eleven.json']}]")
    assert message.startswith("--set retrain.grid.genotype=") and str(files["eleven.json"]) in message


def test_good_files_pass(tmp_path):
    genotype = tmp_path / "g.json"
    genotype.write_text(json.dumps({"ops": ["ag"] * 12}))
    study_files.check_files(load_study("in_domain", "smoke", parse_overrides(
        [f"latency_table={TABLE}", f"retrain.config.genotype={genotype}"])))


@pytest.mark.slow
def test_dry_run_refuses_a_malformed_table_before_any_trial(files, tmp_path):
    done = subprocess.run([sys.executable, "platform/launch.py", "--study", "latency", "--scale", "smoke",
                           "--run-dir", str(tmp_path / "runs"), "--dry-run", "--set",
                           f"latency_table={files['short.json']}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error:") and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("error:") == 1 and "--set latency_table=" in done.stderr


def test_a_file_named_in_the_study_file_is_named_with_phase_and_field(files, tmp_path):
    study = tmp_path / "own.yaml"
    study.write_text("description: a study naming a table\nphases:\n  search:\n    kind: search\n"
                     f"    config: {{latency_table: {files['short.json']}}}\n")
    with pytest.raises(study_files.FileError) as caught:
        study_files.check_files(load_study(str(study), "smoke"))
    message = str(caught.value)
    assert message.startswith(f"{study}: phases.search.config.latency_table: ") and str(files["short.json"]) in message
