"""The report of one launch of a study (or of all its launches): `report.md` with the CSV tables and PNG
figures it shows, written to a folder and logged back to the launch's parent run under `report/`.

It only calls `analysis.runs` (MLflow -> DataFrames), `analysis.genotypes` / `analysis.tables` (DataFrames ->
DataFrames) and `analysis.figures` (DataFrames -> PNGs). A section without data says so in one line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import figures, genotypes, tables
from analysis.links import is_server, runs_table_url, ui_base_url, ui_command
from analysis.runs import (
    REPO_ROOT,
    load_alpha_history,
    load_cmc,
    load_launches,
    load_trials,
    select_launches,
    study_experiment_id,
)

DEFAULT_METRIC, DEFAULT_MODE = "val/mAP", "max"
TEST_PREFIXES = ("source/", "target/")
MARKDOWN_ROWS = 50  # longer tables are cut in report.md (the CSV beside it has every row)
CELL_CHARS = 90


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
    label = launch if launch == "all" or launches.empty else str(launches["launch"].iloc[-1] or launch)
    out = Path(out) if out is not None else default_report_dir(study, label, tracking_uri)
    out.mkdir(parents=True, exist_ok=True)
    runs = load_trials(tracking_uri, launches)
    metric, mode = _objective(launches)
    board = tables.leaderboard(runs, metric, mode)
    written: list[Path] = []
    sections = {
        "Trial status": _status_section(out, runs, written),
        "Leaderboard": _leaderboard_section(out, board, metric, mode, written),
        "Genotype statistics": _genotype_section(out, tracking_uri, runs, board, written),
        "Comparisons the paper makes": _comparison_section(out, runs, written),
        "Accuracy vs cost": _cost_section(out, runs, written),
        "CMC curves of the top trials": _cmc_section(out, tracking_uri, board, top, written),
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


def markdown_table(frame: pd.DataFrame, limit: int = MARKDOWN_ROWS) -> str:
    """A GitHub-flavoured Markdown table (pandas' `to_markdown` needs `tabulate`, which we do not install)."""
    shown = frame.head(limit)
    header = [str(column) for column in shown.columns]
    rows = [[_cell(value) for value in row] for row in shown.itertuples(index=False)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if len(frame) > limit:
        lines.append(f"\n({len(frame) - limit} more rows in the CSV.)")
    return "\n".join(lines)


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
    launch_facts = [f"{row.launch} (parent run `{row.run_id}`, {row.status}, started {_cell(row.start_time)})"
                    for row in launches.itertuples()]
    lines += [f"- **study**: {study}",
              f"- **launch{'es' if len(launches) > 1 else ''}**: {'; '.join(launch_facts) or 'none'}",
              f"- **scale**: {', '.join(sorted({str(s) for s in launches['scale'].dropna()})) or 'unknown'}",
              f"- **metric**: `{metric}` ({mode})" + (" — **a test metric**" if test_optimised else ""),
              f"- **trials**: {_trial_summary(runs)}",
              f"- **tracking URI**: `{tracking_uri}`"]
    url = runs_table_url(ui_base_url(tracking_uri), experiment_id)
    serve = "" if is_server(tracking_uri) else f" (serve the store first: `{ui_command(tracking_uri)}`)"
    lines.append(f"- **MLflow runs table**: <{url}>{serve}")
    return lines


def _trial_summary(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "0"
    counts = tables.status_counts(runs)
    parts = [f"{row.trials} {row.status}" + (f" ({row.stopped_early} stopped early)" if row.stopped_early else "")
             for row in counts.itertuples()]
    return f"{len(runs)}: " + ", ".join(parts)


def _status_section(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    if runs.empty:
        return ["No trials were logged for this launch (yet)."]
    lines = [markdown_table(_save_csv(tables.status_counts(runs), out / "status.csv", written))]
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
    _save_csv(board, out / "leaderboard.csv", written)
    shown = board.dropna(axis=1, how="all")
    return [f"Sorted by the study's metric `{metric}` ({'highest' if mode == 'max' else 'lowest'} first; its latest "
            "logged value; trials without it last). Empty columns are left out here; `leaderboard.csv` has all.",
            "", markdown_table(shown)]


def _genotype_section(out: Path, tracking_uri: str, runs: pd.DataFrame, board: pd.DataFrame,
                      written: list[Path]) -> list[str]:
    lines = ["### Operation won per slot", ""]
    counts = genotypes.operation_counts(runs)
    search = runs[runs["kind"] == "search"]
    if counts["trials"].iloc[0] == 0:
        lines.append(f"No data: no finished search trial with a genotype ({len(search)} search trials in all).")
    else:
        _save_csv(counts, out / "operation_counts.csv", written)
        _save_png(figures.plot_operation_counts(counts, out / "operation_counts.png"), written)
        lines += [f"Counted over the {counts['trials'].iloc[0]} finished search trials with a genotype "
                  f"(of {len(search)} search trials).", "", markdown_table(counts), "",
                  "![operation counts](operation_counts.png)"]
    trial, history = _best_alpha_history(tracking_uri, board)
    lines += ["", "### Final α of the best search trial", ""]
    if trial is None:
        lines.append("No data: no search trial has an `alpha_history.npy` artefact.")
        return lines + ["", "### α over epochs", "", "No data: no search trial has an `alpha_history.npy` artefact."]
    alpha = genotypes.final_alpha(history)
    _save_csv(alpha.reset_index(), out / "final_alpha.csv", written)
    _save_png(figures.plot_alpha_heatmap(alpha, out / "final_alpha.png", f"Final softmax(α): {trial}"), written)
    _save_csv(history, out / "alpha_history.csv", written)
    _save_png(figures.plot_alpha_curves(history, out / "alpha_curves.png", f"softmax(α) over epochs: {trial}"),
              written)
    epochs = int(history["epoch"].max())
    lines += [f"Trial `{trial}` (the best search trial with an α history), epoch {epochs}:", "",
              markdown_table(alpha.round(3).reset_index()), "", "![final alpha](final_alpha.png)",
              "", "### α over epochs", "", f"Every slot of `{trial}`, one panel per slot:", "",
              "![alpha over epochs](alpha_curves.png)"]
    return lines


def _best_alpha_history(tracking_uri: str, board: pd.DataFrame, tries: int = 5) -> tuple[str | None, pd.DataFrame]:
    """The first search trial in leaderboard order (finished ones first) that has an α history."""
    search = board[board["kind"] == "search"]
    search = search.sort_values("status", key=lambda status: status != "FINISHED", kind="stable")
    for row in search.head(tries).itertuples():
        history = load_alpha_history(tracking_uri, row.run_id)
        if not history.empty:
            return row.trial, history
    return None, pd.DataFrame()


def _comparison_section(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    lines = ["### TCM vs classification supervision vs random genotypes", ""]
    supervision = tables.supervision_comparison(runs)
    lines += _distribution(out, supervision, "group", "source/mAP", "supervision",
                           "Retrained source mAP per group", written,
                           "No data: no finished retrain trial with a `msinet.group` tag and `source/mAP`.")
    lines += ["", "### SAM modes in cross-domain", ""]
    sam = tables.sam_comparison(runs)
    lines += _distribution(out, sam, "sam_mode", "target/mAP", "sam_modes", "Target mAP per SAM mode", written,
                           "No data: no finished cross-domain retrain trial (`target/mAP`) with a `sam_mode` param.")
    lines += ["", "### Searched vs published genotype", ""]
    published = tables.published_comparison(runs)
    present = set(published["origin"])
    if not {"published", "searched"} <= present:
        missing = " and ".join(sorted({"published", "searched"} - present))
        return lines + [f"No data: no finished retrain of a {missing} genotype with a source or target mAP."]
    value = "source/mAP" if published["source/mAP"].notna().any() else "target/mAP"
    shown = published.dropna(subset=[value]).assign(phase=lambda frame: frame["phase"].fillna("?"))
    shown = shown.assign(category=shown["origin"] + " / " + shown["phase"])
    _save_csv(published, out / "published.csv", written)
    summary = _save_csv(tables.summarise(shown, ["phase", "origin"], value), out / "published_summary.csv", written)
    _save_png(figures.plot_distribution(shown, "category", value, out / "published.png",
                                        f"{value}: searched vs published genotype"), written)
    return lines + ["Published = group `published` or param genotype `msmt`; searched = any other non-random "
                    "genotype; compared within each phase.", "", markdown_table(summary), "",
                    "![published](published.png)"]


def _distribution(out: Path, long: pd.DataFrame, by: str, value: str, name: str, title: str, written: list[Path],
                  absent: str) -> list[str]:
    if long.empty:
        return [absent]
    _save_csv(long, out / f"{name}.csv", written)
    summary = _save_csv(tables.summarise(long, by, value), out / f"{name}_summary.csv", written)
    _save_png(figures.plot_distribution(long, by, value, out / f"{name}.png", title), written)
    return [markdown_table(summary), "", f"![{name}]({name}.png)"]


def _cost_section(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    table = tables.cost_table(runs)
    if table.empty:
        return ["No data: no finished retrain trial with `source/mAP` and `params` or `macs`."]
    _save_csv(table, out / "cost.csv", written)
    _save_png(figures.plot_cost(table, "source/mAP", out / "cost.png"), written)
    front = table[table["pareto_params"] | table["pareto_macs"] | table["pareto_latency"]]
    measured = int(table["latency_ms"].notna().sum())
    latency = (f"; latency measured on {measured} (ms per image at batch 1, images/s at batch 64, on each trial's "
               "device: compare runs on the same kind of device)" if measured else "; no latency measured")
    return [f"{len(table)} finished retrains; {len(front)} on a Pareto front (source mAP against parameters, "
            f"MACs or measured latency){latency}:", "", markdown_table(front), "", "![accuracy vs cost](cost.png)"]


def _cmc_section(out: Path, tracking_uri: str, board: pd.DataFrame, top: int, written: list[Path]) -> list[str]:
    best = board[(board["kind"] == "retrain") & (board["status"] == "FINISHED")].head(top)
    lines: list[str] = []
    for key, name in (("source/cmc", "cmc"), ("target/cmc", "cmc_target")):
        cmc = load_cmc(tracking_uri, best, key) if not best.empty else pd.DataFrame()
        if cmc.empty:
            if key == "source/cmc":
                lines.append("No data: no finished retrain trial has a `source/cmc` curve in `metrics.json`.")
            continue
        _save_csv(cmc, out / f"{name}.csv", written)
        count = cmc["trial"].nunique()
        _save_png(figures.plot_cmc_curves(cmc, out / f"{name}.png", f"{key} of the top {count} trials"), written)
        lines += [f"`{key}` of the top {count} finished retrains by the study's metric:", "",
                  f"![{key}]({name}.png)", ""]
    return lines


def _save_csv(frame: pd.DataFrame, path: Path, written: list[Path]) -> pd.DataFrame:
    frame.to_csv(path, index=False)
    written.append(path)
    return frame


def _save_png(path: Path, written: list[Path]) -> None:
    written.append(path)


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"
