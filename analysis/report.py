"""The report of one launch of a study (or of all its launches): `report.md` with the CSV tables and PNG
figures it shows, written to a folder and logged back to the launch's parent run under `report/`.

It only calls `analysis.runs` (MLflow -> DataFrames), `analysis.genotypes` / `analysis.tables` (DataFrames ->
DataFrames) and `analysis.figures` (DataFrames -> PNGs). A section without data says so in one line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import figures, genotypes, margins, tables, uncertainty
from analysis.launch_state import launch_state, settle_silent
from analysis.links import is_server, runs_table_url, ui_base_url, ui_command
from analysis.report_comparisons import comparison_section
from analysis.report_files import cell, markdown_table, save_csv, save_png
from analysis.report_final import final_section
from analysis.report_latency import latency_section
from analysis.report_views import views_section
from analysis.runs import (
    REPO_ROOT,
    load_alpha_history,
    load_cmc,
    load_launches,
    load_trials,
    select_launches,
    study_experiment_id,
)
from trials.runtime.folders import check_output

DEFAULT_METRIC, DEFAULT_MODE = "val/mAP", "max"
TEST_PREFIXES = ("source/", "target/")


def default_report_dir(study: str, launch: str, tracking_uri: str | None = None) -> Path:
    """`reports/<study>-<launch>` beside a SQLite store's file, else under `<repo>/runs`."""
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).resolve().parent / "reports" / f"{study}-{launch}"
    return REPO_ROOT / "runs" / "reports" / f"{study}-{launch}"


def write_report(tracking_uri: str, study: str, launch: str = "latest", out: Path | None = None,
                 log: bool = True, top: int = 5) -> Path:
    """Write the report of `launch` (an id, `latest` or `all`) and return the path of its `report.md`.

    With `log`, the files are also logged to the launch's parent run under `report/` (for `all`: to the most
    recent parent, under `report-all/`, so a launch's own report is not overwritten). Raises StudyNotFound /
    LaunchNotFound; an empty study, running or failed trials are written into the report, not raised.
    """
    experiment_id = study_experiment_id(tracking_uri, study)
    launches = select_launches(load_launches(tracking_uri, study), launch)
    if log and settle_silent(tracking_uri, launches):  # a killed driver's launch: its stores told so
        launches = select_launches(load_launches(tracking_uri, study), launch)
    label = launch if launch == "all" or launches.empty else str(launches["launch"].iloc[-1] or launch)
    out = (check_output(out, "--out") if out is not None
           else check_output(default_report_dir(study, label, tracking_uri), "report folder"))
    runs = load_trials(tracking_uri, launches)
    metric, mode = _objective(launches)
    board = tables.leaderboard(runs, metric, mode)
    written: list[Path] = []
    sections = {
        "Trial status": _status_section(out, runs, written),
        "Leaderboard": _leaderboard_section(out, board, metric, mode, written),
        "Paper-comparable numbers": final_section(out, runs, launches, written),
        "Genotype statistics": _genotype_section(out, tracking_uri, runs, board, written),
        "Comparisons the paper makes": comparison_section(out, runs, written),
        "Accuracy vs cost": _cost_section(out, runs, written),
        "Accuracy vs latency": latency_section(out, runs, written),
        "CMC curves of the top trials": _cmc_section(out, tracking_uri, board, top, written),
        "Ranked lists and activation maps of the top retrains": views_section(out, tracking_uri, board, written),
    }
    lines = _header(tracking_uri, study, experiment_id, label, launches, runs, metric, mode)
    for title, section in sections.items():
        lines += ["", f"## {title}", "", *section]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    written.append(report)
    if log and not launches.empty:
        log_report(tracking_uri, str(launches["run_id"].iloc[-1]), written,
                   "report-all" if launch == "all" else "report")
    return report


def log_report(tracking_uri: str, parent_run_id: str, files: list[Path], artifact_path: str = "report") -> None:
    """Log the report's files (only these: a reused folder may hold stale ones) to the parent run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    for path in files:
        client.log_artifact(parent_run_id, str(path), artifact_path)


def _objective(launches: pd.DataFrame) -> tuple[str, str]:
    if launches.empty:
        return DEFAULT_METRIC, DEFAULT_MODE
    latest = launches.iloc[-1]
    metric = latest["metric"] if isinstance(latest["metric"], str) and latest["metric"] else DEFAULT_METRIC
    mode = latest["mode"] if latest["mode"] in tables.MODES else DEFAULT_MODE
    return metric, mode


def _header(tracking_uri: str, study: str, experiment_id: str, label: str, launches: pd.DataFrame,
            runs: pd.DataFrame, metric: str, mode: str) -> list[str]:
    lines = [f"# Study report: {study}, launch {label}", ""]
    test_optimised = bool(launches["test_metric_optimised"].any()) or metric.startswith(TEST_PREFIXES)
    if test_optimised:
        lines += [f"> **WARNING: a test metric was optimised.** This launch chose trials by `{metric}`, a test-split "
                  "score: its test numbers are optimistic and not comparable with honestly selected ones "
                  "(docs/method.md, Honest selection).", ""]
    if launches.empty:
        lines += [f"**The study {study!r} has no launches yet** (no parent run tagged `msinet.role=launch` in its "
                  "experiment): nothing to report.", ""]
    launch_facts = [f"{row['launch']} (parent run `{row['run_id']}`, {launch_state(row)}, started "
                    f"{cell(row['start_time'])})" for _, row in launches.iterrows()]
    lines += [f"- **study**: {study}",
              f"- **launch{'es' if len(launches) > 1 else ''}**: {'; '.join(launch_facts) or 'none'}",
              f"- **scale**: {', '.join(sorted({str(s) for s in launches['scale'].dropna()})) or 'unknown'}",
              f"- **metric**: `{metric}` ({mode})" + (" — **a test metric**" if test_optimised else "")
              + _other_objectives(launches, metric),
              f"- **trials**: {_trial_summary(runs)}",
              f"- **GPU-hours held** (GPU share x time each trial ran): {_gpu_hours(runs)}",
              f"- **tracking URI**: `{tracking_uri}`"]
    url = runs_table_url(ui_base_url(tracking_uri), experiment_id)
    serve = "" if is_server(tracking_uri) else f" (serve the store first: `{ui_command(tracking_uri)}`)"
    lines.append(f"- **MLflow runs table**: <{url}>{serve}")
    return lines


def _other_objectives(launches: pd.DataFrame, metric: str) -> str:
    """`, then latency/ms (min): a multi-objective study` from the parent run's `msinet.objectives` tag."""
    tag = launches["tags.msinet.objectives"].dropna() if "tags.msinet.objectives" in launches else pd.Series([])
    pairs = [p.rsplit(":", 1) for p in (str(tag.iloc[-1]).split(",") if len(tag) else []) if ":" in p]
    others = [f"`{m}` ({mode})" for m, mode in pairs if m != metric]
    return f" against {', '.join(others)}: a multi-objective study (see *Accuracy vs latency*)" if others else ""


def _trial_summary(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "0"
    counts = tables.status_counts(runs)
    parts = [f"{row.trials} {row.status}" + (f" ({row.stopped_early} stopped early)" if row.stopped_early else "")
             for row in counts.itertuples()]
    return f"{len(runs)}: " + ", ".join(parts)


def _gpu_hours(runs: pd.DataFrame) -> str:
    """The launch's total and per phase, from the trials' `gpu_hours` metric (absent: no GPU trial ran)."""
    if runs.empty or "metrics.gpu_hours" not in runs:
        return "none recorded"
    per_phase = runs.groupby("phase")["metrics.gpu_hours"].sum()
    return f"{per_phase.sum():.3f} (" + ", ".join(f"{p} {h:.3f}" for p, h in per_phase.items()) + ")"


def _status_section(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    if runs.empty:
        return ["No trials were logged for this launch (yet)."]
    lines = [markdown_table(save_csv(tables.status_counts(runs), out / "status.csv", written))]
    unfinished = runs[runs["status"] != "FINISHED"]
    if unfinished.empty:
        return lines + ["", "Every trial finished."]
    lines += ["", "Trials that did not finish (their rows stay in the leaderboard with whatever they logged):", ""]
    lines.append(markdown_table(unfinished[["trial", "phase", "status", "error", "run_id"]]))
    if (runs["status"] == "RUNNING").any():
        lines += ["", "Some trials are still running: their numbers are the latest logged, not final."]
    return lines


def _leaderboard_section(out: Path, board: pd.DataFrame, metric: str, mode: str, written: list[Path]) -> list[str]:
    if board.empty:
        return ["No data: no trials, so no leaderboard."]
    save_csv(board, out / "leaderboard.csv", written)
    shown = board.dropna(axis=1, how="all")
    return [f"Sorted by the study's metric `{metric}` ({'highest' if mode == 'max' else 'lowest'} first; its latest "
            "logged value). Trials a scheduler stopped early come after those that ran every epoch and are not "
            "ranked: their value is from fewer epochs, so it is not comparable. Trials without the metric come last. "
            "`params` counts the parameters without the classifier (whose size follows the number of training "
            "identities, not the architecture). `genotype_margins` marks each slot the search left undecided "
            f"(margin below {margins.THRESHOLD:g}) with `?`. Empty columns are left out here; `leaderboard.csv` "
            "has all.",
            "", *_choice_lines(board, metric, mode), "", markdown_table(shown)]


def _choice_lines(board: pd.DataFrame, metric: str, mode: str) -> list[str]:
    """Per phase, the best trial that ran every epoch against the runner-up, with intervals and validation size."""
    lines = [f"Best per phase by `{metric}`, with its 95 % bootstrap interval over the validation identities "
             "(undecided when the runner-up's interval overlaps it):", ""]
    low, high = uncertainty.interval_keys(metric)
    for phase, block in board[board["rank"].notna()].groupby("phase", sort=False):
        items = [uncertainty.candidate(str(row["trial"]), {metric: row[metric], low: row[low], high: row[high],
                                                            "val/num_valid_queries": row["val_queries"],
                                                            "val/num_valid_ids": row["val_ids"]}, metric)
                 for _, row in block.iterrows()]
        lines.append(f"- {phase}: {uncertainty.choice_text(uncertainty.choice(items, mode), metric)}")
    return lines


def _genotype_section(out: Path, tracking_uri: str, runs: pd.DataFrame, board: pd.DataFrame,
                      written: list[Path]) -> list[str]:
    histories = _search_histories(tracking_uri, board)
    margin_table = margins.trial_margins(histories)
    lines = ["### Operation won per slot", ""]
    counts = genotypes.operation_counts(runs)
    search = runs[runs["kind"] == "search"]
    if counts["trials"].iloc[0] == 0:
        lines.append(f"No data: no finished search trial with a genotype ({len(search)} search trials in all).")
    else:
        save_csv(counts, out / "operation_counts.csv", written)
        save_png(figures.plot_operation_counts(counts, out / "operation_counts.png"), written)
        lines += [f"Counted over the {counts['trials'].iloc[0]} finished search trials with a genotype "
                  f"(of {len(search)} search trials). Beside each count, Δ is the mean decision margin (winner's "
                  "softmax(α) minus the runner-up's at the last epoch) of the trials behind it: a count whose Δ "
                  f"is below {margins.THRESHOLD:g} was not chosen but drawn from near-uniform weights.", "",
                  markdown_table(margins.counts_with_margins(runs, margin_table)), "",
                  "![operation counts](operation_counts.png)"]
    lines += ["", "### Decision margins", "", *_margin_lines(out, margin_table, written)]
    lines += ["", "### Agreement between search trials", "", *_agreement_lines(out, runs, written)]
    trial = next(iter(histories), None)
    lines += ["", "### Final α of the best search trial", ""]
    if trial is None:
        lines.append("No data: no search trial has an `alpha_history.npy` artefact.")
        return lines + ["", "### α over epochs", "", "No data: no search trial has an `alpha_history.npy` artefact."]
    history = histories[trial]
    alpha = genotypes.final_alpha(history)
    save_csv(alpha.reset_index(), out / "final_alpha.csv", written)
    save_png(figures.plot_alpha_heatmap(alpha, out / "final_alpha.png", f"Final softmax(α): {trial}"), written)
    save_csv(history, out / "alpha_history.csv", written)
    save_png(figures.plot_alpha_curves(history, out / "alpha_curves.png", f"softmax(α) over epochs: {trial}"),
              written)
    epochs = int(history["epoch"].max())
    lines += [f"Trial `{trial}` (the best search trial with an α history, among those that ran every epoch when any "
              f"did), epoch {epochs}:", "",
              markdown_table(alpha.round(3).reset_index()), "", "![final alpha](final_alpha.png)",
              "", "### α over epochs", "", f"Every slot of `{trial}`, one panel per slot:", "",
              "![alpha over epochs](alpha_curves.png)"]
    return lines


def _margin_lines(out: Path, margin_table: pd.DataFrame, written: list[Path]) -> list[str]:
    if margin_table.empty:
        return ["No data: no search trial has an `alpha_history.npy` artefact."]
    save_csv(margin_table, out / "decision_margins.csv", written)
    summary = save_csv(margins.decision_summary(margin_table), out / "decision_summary.csv", written)
    lines = [f"Per search trial, at its last epoch: a slot is *undecided* when its margin (winner's softmax(α) "
             f"minus the runner-up's) is below {margins.THRESHOLD:g}; entropy is in nats (uniform: ln 4 = 1.386). "
             "`decision_margins.csv` has every slot of every trial.", "", markdown_table(summary), ""]
    lines += [f"- {sentence}" for sentence in margins.verdict_sentences(summary)]
    if (summary["verdict"] == "undecided").all():
        lines += ["", "**No search trial of this report decided any slot: every genotype here is undecided.**"]
    return lines


def _agreement_lines(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    table = margins.agreement(runs)
    if table.empty:
        return ["No data: no finished search trial with a genotype."]
    save_csv(table, out / "agreement.csv", written)
    lines = ["Per launch and slot: the operation most finished search trials chose, the share that chose it, and "
             "the share of trial pairs that agree (about 0.25 is what four operations drawn at random give).", ""]
    for launch, block in table.groupby("launch", sort=False):
        trials = int(block["trials"].iloc[0])
        if trials < 2:
            lines.append(f"- launch {launch}: one finished search trial, so no agreement to measure.")
        else:
            unanimous = int((block["share"] == 1).sum())
            lines.append(f"- launch {launch}: {trials} search trials agree on {unanimous} of {len(block)} slots; "
                         f"mean pair agreement {block['pair_agreement'].mean():.2f}.")
    return lines + ["", markdown_table(table.round(3))]


def _search_histories(tracking_uri: str, board: pd.DataFrame, limit: int = 100) -> dict[str, pd.DataFrame]:
    """α histories of the search trials in leaderboard order (those that ran every epoch first, then those
    stopped early, then unfinished ones); trials without one are left out, so the first entry is the best
    search trial with an α history, at the full budget when any trial reached it."""
    search = board[board["kind"] == "search"]
    search = search.sort_values("status", key=lambda status: status != "FINISHED", kind="stable")
    histories = {}
    for row in search.head(limit).itertuples():
        history = load_alpha_history(tracking_uri, row.run_id)
        if not history.empty:
            histories[row.trial] = history
    return histories


def _cost_section(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    table = tables.cost_table(runs)
    if table.empty:
        return ["No data: no finished retrain trial with `source/mAP` and `params` or `macs`."]
    save_csv(table, out / "cost.csv", written)
    save_png(figures.plot_cost(table, "source/mAP", out / "cost.png"), written)
    front = table[table["pareto_params"] | table["pareto_macs"] | table["pareto_latency"]]
    measured = int(table["latency_ms"].notna().sum())
    latency = (f"; latency measured on {measured} (ms per image at batch 1, images/s at batch 64, on each trial's "
               "device: compare runs on the same kind of device)" if measured else "; no latency measured")
    return [f"{len(table)} finished retrains; {len(front)} on a Pareto front (source mAP against parameters, "
            f"MACs or measured latency){latency}. Parameters are counted without the classifier, as in the "
            "leaderboard:", "", markdown_table(front), "", "![accuracy vs cost](cost.png)"]


def _cmc_section(out: Path, tracking_uri: str, board: pd.DataFrame, top: int, written: list[Path]) -> list[str]:
    best = board[(board["kind"] == "retrain") & (board["status"] == "FINISHED")].head(top)
    lines: list[str] = []
    for key, name in (("source/cmc", "cmc"), ("target/cmc", "cmc_target")):
        cmc = load_cmc(tracking_uri, best, key) if not best.empty else pd.DataFrame()
        if cmc.empty:
            if key == "source/cmc":
                lines.append("No data: no finished retrain trial has a `source/cmc` curve in `metrics.json`.")
            continue
        save_csv(cmc, out / f"{name}.csv", written)
        count = cmc["trial"].nunique()
        save_png(figures.plot_cmc_curves(cmc, out / f"{name}.png", f"{key} of the top {count} trials"), written)
        lines += [f"`{key}` of the top {count} finished retrains by the study's metric:", "",
                  f"![{key}]({name}.png)", ""]
    return lines
