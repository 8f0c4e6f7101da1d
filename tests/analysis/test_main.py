"""The command line: `python -m analysis report` and `compare`, as a user runs them from the repository root."""

import subprocess
import sys

import pytest

from analysis.links import runs_table_url
from analysis.runs import REPO_ROOT


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)


def test_help_describes_every_command_in_whole_sentences():
    result = _cli("--help")
    assert result.returncode == 0
    described = " ".join(result.stdout.split("positional arguments")[0].split())
    assert described.endswith("describes each.")
    for command in ("`report` writes", "`compare` puts runs side by side", "`promote` points"):
        assert command in described


@pytest.mark.slow
def test_report_writes_the_files_and_prints_where(study_store, tmp_path):
    out = tmp_path / "report"
    result = _cli("report", "--study", "nas", "--tracking-uri", study_store.uri, "--out", str(out), "--no-log")
    assert result.returncode == 0, result.stderr
    assert f"report: {out / 'report.md'}" in result.stdout
    assert runs_table_url("http://127.0.0.1:5000", study_store.experiment_id) in result.stdout
    assert "serve it with: mlflow ui --backend-store-uri" in result.stdout
    assert {"report.md", "leaderboard.csv", "operation_counts.png", "cmc.png"} <= {p.name for p in out.iterdir()}
    assert "Downloading artifacts" not in result.stderr  # no progress bar per artefact read


@pytest.mark.slow
def test_an_unknown_study_is_one_paragraph_naming_the_experiments_and_a_non_zero_exit(study_store):
    result = _cli("report", "--study", "nope", "--tracking-uri", study_store.uri)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: study 'nope' not found")
    assert all(name in message for name in ("nas", "empty", "idle"))
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_compare_marks_differing_genotype_slots_and_names_unknown_runs(study_store):
    a, b = study_store.trials["retrain/b_00000"], study_store.trials["retrain/b_00004"]
    result = _cli("compare", a.run_id, b.run_id, "--tracking-uri", study_store.uri)
    assert result.returncode == 0, result.stderr
    slots = [line for line in result.stdout.splitlines() if line.startswith("slot")]
    assert len(slots) == 12
    ops_a = a.genotype.replace("/", "-").split("-")
    ops_b = b.genotype.replace("/", "-").split("-")
    assert [line.endswith("*") for line in slots] == [x != y for x, y in zip(ops_a, ops_b, strict=True)]
    assert "retrain/b_00000" in result.stdout.splitlines()[0]

    missing = _cli("compare", a.run_id, "f" * 32, "--tracking-uri", study_store.uri)
    assert missing.returncode == 2
    assert f"run '{'f' * 32}' not found" in missing.stderr and "nas" in missing.stderr
