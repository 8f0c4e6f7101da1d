"""The report: every section, its tables and figures as files, logged back to the launch's parent run."""

import re

import matplotlib.image
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis.genotypes import operation_counts
from analysis.links import runs_table_url, ui_command
from analysis.report import default_report_dir, markdown_table, write_report
from analysis.runs import REPO_ROOT, LaunchNotFound
from analysis.tables import leaderboard

SECTIONS = ("## Trial status", "## Leaderboard", "## Genotype statistics", "### Operation won per slot",
            "### Decision margins", "### Agreement between search trials", "### Final α of the best search trial",
            "### α over epochs", "## Comparisons the paper makes",
            "### TCM vs classification supervision vs random genotypes", "### SAM modes in cross-domain",
            "### Searched vs published genotype", "## Accuracy vs cost", "## CMC curves of the top trials",
            "## Ranked lists and activation maps of the top retrains")
TOP_RETRAINS = ("retrain/b_00001", "retrain/b_00000", "retrain/b_00006")  # by val/mAP
FIGURES = {"operation_counts.png", "final_alpha.png", "alpha_curves.png", "supervision.png", "sam_modes.png",
           "published.png", "cost.png", "cmc.png", "cmc_target.png",
           *(f"{kind}-{trial.replace('/', '_')}.png" for trial in TOP_RETRAINS
             for kind in ("rank_lists", "activation_maps"))}


@pytest.mark.slow
def test_the_report_has_every_section_with_its_figures(written_report):
    text = written_report.read_text()
    for heading in SECTIONS:
        assert f"\n{heading}\n" in text, heading
    assert "No data" not in text
    shown = set(re.findall(r"!\[[^]]*\]\(([^)]+)\)", text))
    assert shown == FIGURES
    for name in shown:
        image = matplotlib.image.imread(written_report.parent / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert {path.name for path in written_report.parent.glob("*.png")} == FIGURES
    assert "WARNING" not in text


def test_the_report_names_unfinished_trials_and_links_the_runs_table(study_store, written_report):
    text = written_report.read_text()
    assert "16: 1 FAILED, 14 FINISHED (1 stopped early), 1 RUNNING" in text
    failed = study_store.trials["retrain/b_00007"]
    assert "loss is NaN at epoch 2 \\| diverged" in text and failed.run_id in text
    assert "still running" in text
    assert runs_table_url("http://127.0.0.1:5000", study_store.experiment_id) in text
    assert ui_command(study_store.uri) in text


def test_the_csv_tables_hold_what_the_functions_return(study_runs, written_report):
    folder = written_report.parent
    board = pd.read_csv(folder / "leaderboard.csv")
    expected = leaderboard(study_runs, "val/mAP", "max")
    assert list(board["trial"]) == list(expected["trial"])
    assert list(board["val/mAP"]) == pytest.approx(list(expected["val/mAP"]))
    assert list(board.columns) == list(expected.columns)
    counts = pd.read_csv(folder / "operation_counts.csv")
    pd.testing.assert_frame_equal(counts, operation_counts(study_runs), check_dtype=False)
    alpha = pd.read_csv(folder / "final_alpha.csv")
    assert alpha.shape == (12, 5) and alpha[["none", "exc", "ag", "cross_att"]].sum(axis=1).round(6).eq(1).all()
    for name in ("supervision", "sam_modes", "published", "cost", "cmc", "status", "decision_margins",
                 "decision_summary", "agreement"):
        assert not pd.read_csv(folder / f"{name}.csv").empty, name


def test_the_files_are_logged_to_the_parent_run(study_store, written_report):
    client = MlflowClient(study_store.uri)
    logged = {artefact.path for artefact in client.list_artifacts(study_store.parent_run_id, "report")}
    assert logged == {f"report/{path.name}" for path in written_report.parent.iterdir()}
    platform_files = {artefact.path for artefact in client.list_artifacts(study_store.parent_run_id)}
    assert {"study.yaml", "plan.json", "leaderboard.csv"} <= platform_files  # left alone
    assert not client.list_artifacts(study_store.old_parent_run_id, "report")


def test_a_study_without_launches_says_so_in_every_section(study_store, tmp_path):
    text = write_report(study_store.uri, "empty", out=tmp_path).read_text()
    assert "has no launches yet" in text
    for heading in SECTIONS:
        assert heading in text
    assert text.count("No data") >= 8 and "No trials" in text
    experiment_id = MlflowClient(study_store.uri).get_experiment_by_name("empty").experiment_id
    assert runs_table_url("http://127.0.0.1:5000", experiment_id) in text  # where its runs will appear


def test_a_launch_that_optimised_a_test_metric_is_flagged(study_store, tmp_path):
    text = write_report(study_store.uri, "idle", out=tmp_path).read_text()
    assert "> **WARNING: a test metric was optimised.**" in text.split("## Trial status")[0]
    assert "No trials were logged" in text


def test_all_launches_are_reported_together_without_overwriting_a_launchs_report(study_store, tmp_path):
    text = write_report(study_store.uri, "nas", "all", out=tmp_path).read_text()
    assert "retrain/old_00000" in text and "launches" in text
    client = MlflowClient(study_store.uri)
    assert client.list_artifacts(study_store.parent_run_id, "report-all")
    with pytest.raises(LaunchNotFound):
        write_report(study_store.uri, "nas", "L7", out=tmp_path)


def test_the_default_folder_is_under_the_repositorys_runs():
    assert default_report_dir("nas", "L2") == REPO_ROOT / "runs" / "reports" / "nas-L2"
    assert default_report_dir("nas", "L2").is_absolute()


def test_markdown_tables_escape_pipes_and_cut_long_tables():
    table = markdown_table(pd.DataFrame({"a": ["x|y", None], "b": [1234567.0, 0.123456]}), limit=1)
    assert "x\\|y" in table and "1,234,567" in table and "1 more rows" in table


def test_the_report_gives_margins_beside_counts_and_a_verdict_per_search_trial(study_store, written_report):
    text = written_report.read_text()
    summary = pd.read_csv(written_report.parent / "decision_summary.csv")
    searches = study_store.by_kind("search")
    assert set(summary["trial"]) == {t.name for t in searches}
    assert (summary["verdict"] == "decided").all()  # the store's α histories end at 0.85 on their genotype
    assert "the whole genotype is undecided" not in text
    assert re.search(r"\| 2 \(Δ 0\.800\) \|", text)  # slot counts with the margin of the trials behind them
    agreement = pd.read_csv(written_report.parent / "agreement.csv")
    assert set(agreement["launch"]) == {"L2"} and (agreement["trials"] == len(searches)).all()
    assert "launch L2: 3 search trials agree on" in text


def test_every_comparison_gives_intervals_pairs_and_says_when_it_is_anecdotal(written_report):
    text = written_report.read_text()
    folder = written_report.parent
    for name, by in (("supervision", "group"), ("sam_modes", "sam_mode")):
        summary = pd.read_csv(folder / f"{name}_summary.csv")
        long = pd.read_csv(folder / f"{name}.csv")
        assert {"n", "mean", "ci_low", "ci_high", "anecdotal"} <= set(summary.columns)
        assert list(summary["n"]) == list(long.groupby(by, sort=False).size())
        assert (summary["ci_low"] <= summary["mean"] + 1e-12).all()
        assert (summary["mean"] <= summary["ci_high"] + 1e-12).all()
        assert (summary["anecdotal"] == (summary["n"] < 3)).all()
    published = pd.read_csv(folder / "published_summary.csv")
    assert {"phase", "origin", "ci_low", "ci_high"} <= set(published.columns)
    pairs = pd.read_csv(folder / "supervision_pairs.csv")
    assert ("tcm", "classification") in set(zip(pairs["a"], pairs["b"], strict=True))
    assert pairs["p_a_beats_b"].between(0, 1).all()
    assert "P(tcm beats random) = 1.00 — anecdotal" in text  # tcm 0.60/0.62 against random 0.41/0.44, n = 2 each
    assert text.count("**Anecdotal**") == 3  # every comparison in the store has a group of fewer than 3
    assert "bootstrap 95 % interval" in text


def test_the_top_retrains_rank_lists_and_activation_maps_are_shown_with_their_shared_queries(study_store,
                                                                                          written_report, tmp_path):
    text = written_report.read_text()
    section = text[text.index("## Ranked lists and activation maps"):]
    assert [line[4:] for line in section.splitlines() if line.startswith("### ")] == list(TOP_RETRAINS)
    assert "Queries 4, 9 appear in every network's rank list" in section
    client = MlflowClient(study_store.uri)
    for trial in TOP_RETRAINS:
        slug = trial.replace("/", "_")
        logged = client.download_artifacts(study_store.trials[trial].run_id, "rank_lists.png",
                                           str(tmp_path / slug))
        with open(logged, "rb") as original:
            assert (written_report.parent / f"rank_lists-{slug}.png").read_bytes() == original.read()
        assert f"![rank lists of {trial}](rank_lists-{slug}.png)" in section
        assert f"![activation maps of {trial}](activation_maps-{slug}.png)" in section


def test_a_final_group_is_its_own_row_never_pooled_with_the_others(study_runs, tmp_path):
    from analysis.report_comparisons import comparison_section

    tcm = study_runs[(study_runs["group"] == "tcm") & (study_runs["status"] == "FINISHED")
                     & (study_runs["kind"] == "retrain")]
    final = tcm.assign(group="final", phase="final", trial=lambda frame: "final/" + frame["trial"])
    lines = comparison_section(tmp_path, pd.concat([study_runs, final], ignore_index=True), [])
    summary = pd.read_csv(tmp_path / "supervision_summary.csv").set_index("group")
    assert summary.loc["final", "n"] == len(final) and summary.loc["tcm", "n"] == len(tcm)
    assert list(summary.index)[-1] == "final"
    assert any("Group `final`" in line and "not pooled" in line for line in lines)
    published = pd.read_csv(tmp_path / "published_summary.csv")
    assert set(published.loc[published["phase"] == "final", "origin"]) <= {"published", "searched"}
    assert published.loc[published["phase"] == "retrain", "n"].sum() == 5  # the final runs are not in it


def test_grouped_finals_are_compared_side_by_side_on_the_target(study_runs, tmp_path):
    from analysis.report_final import final_section
    from analysis.tables import sam_comparison

    cross = study_runs[study_runs["phase"] == "cross_domain"]
    final = cross.assign(group="final", phase="final", trial=lambda frame: "final/" + frame["trial"],
                         **{"tags.msinet.final_group_by": "sam_mode",
                            "tags.msinet.final_group": cross["params.sam_mode"]})
    repeat = final[final["tags.msinet.final_group"] == "pos"].assign(
        trial="final/repeat", **{"metrics.target/mAP": 0.30, "metrics.target/rank1": 0.50})
    runs = pd.concat([study_runs, final, repeat], ignore_index=True)
    launches = pd.DataFrame({"launch": ["L2"], "tags.msinet.from_scratch": ["from scratch: not comparable to "
                                                                            "the paper's pretrained numbers: x"]})
    lines = final_section(tmp_path, runs, launches, [])
    sides = pd.read_csv(tmp_path / "final_comparison.csv").set_index("sam_mode")
    assert list(sides.index) == ["none", "pos", "neg", "pos_neg"] and sides.loc["pos", "n"] == 2
    assert sides.loc["pos", "target/mAP"] == pytest.approx((0.24 + 0.30) / 2)
    assert sides.loc["pos", "target/mAP ci_low"] <= 0.24 and sides.loc["pos", "target/mAP ci_high"] >= 0.30
    assert pd.isna(sides.loc["none", "target/mAP ci_low"])  # one run: a number, no interval
    text = "\n".join(lines)
    assert text.index("> **from scratch: not comparable") < text.index("| sam_mode | n | target/mAP | target/rank1 "
                                                                         "| source/mAP | source/rank1 |")
    pos_line = next(line for line in text.splitlines() if line.startswith("| pos |"))
    assert "0.2700 [" in pos_line and "final/repeat" in pos_line
    assert len(sam_comparison(runs)) == len(sam_comparison(study_runs))  # finals are not pooled with retrains
