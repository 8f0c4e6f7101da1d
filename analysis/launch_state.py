"""One verdict on a launch whose driver is gone: it is interrupted, and so are its trials.

A live driver refreshes its parent run's heartbeat tag every 30 s. A launch that MLflow calls RUNNING but whose
driver has been silent for `SILENT_AFTER_S` was killed (SIGKILL, a lost shell, a lost head node): readers
(`analysis.runs`, the report) see it and its RUNNING trials as interrupted, never as running. `settle`
writes the same verdict into the stores a killed driver could not close: the parent and its RUNNING trial runs
KILLED in MLflow, its RUNNING Optuna trials FAIL; `--resume` and Ctrl-C settle through it too.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

HEARTBEAT_TAG = "msinet.heartbeat"
OPTUNA_TAG = "msinet.optuna_storage"  # on the parent run: where its phases' Optuna studies live
SILENT_AFTER_S = 300  # a live driver refreshes its heartbeat every 30 s
INTERRUPTED = "KILLED"  # MLflow's status of an interrupted run
PARENT_TAG = "mlflow.parentRunId"


def silent_for(row: pd.Series, now: float | None = None) -> float | None:
    """Seconds since a RUNNING launch's driver last beat; None for an ended launch or one without a heartbeat."""
    beat = pd.to_numeric(row.get(f"tags.{HEARTBEAT_TAG}"), errors="coerce")
    if row["status"] != "RUNNING" or pd.isna(beat):
        return None
    return (now if now is not None else time.time()) - float(beat)


def is_interrupted(row: pd.Series, now: float | None = None) -> bool:
    """KILLED, or RUNNING with a driver silent past the heartbeat."""
    silent = silent_for(row, now)
    return row["status"] == INTERRUPTED or (silent is not None and silent > SILENT_AFTER_S)


def launch_state(row: pd.Series, now: float | None = None) -> str:
    """The parent run's status in words; a RUNNING launch whose driver has been silent for minutes is interrupted."""
    silent = silent_for(row, now)
    if silent is not None and silent > SILENT_AFTER_S:
        return (f"**interrupted**: RUNNING in MLflow, but its driver has been silent for {silent / 60:.0f} min "
                "(killed?); `python platform/launch.py --study ... --resume` continues it")
    if row["status"] == "RUNNING":
        return "running (live)" if silent is not None else "RUNNING"
    return "interrupted (KILLED)" if row["status"] == INTERRUPTED else str(row["status"])


def trials_as_seen(trials: pd.DataFrame, launches: pd.DataFrame, now: float | None = None) -> pd.DataFrame:
    """The trial rows with the launches' verdict: a RUNNING trial of an interrupted launch is KILLED."""
    gone = {row["run_id"] for _, row in launches.iterrows() if is_interrupted(row, now)}
    stale = trials["parent_run_id"].isin(gone) & (trials["status"] == "RUNNING")
    if not stale.any():
        return trials
    trials = trials.copy()
    trials.loc[stale, "status"] = INTERRUPTED
    trials.loc[stale & trials["error"].isna(), "error"] = "interrupted: its launch's driver stopped"
    return trials


def settle(tracking_uri: str, experiment_id: str, parent_run_id: str, optuna_storage: str | None,
           optuna_prefix: str, status: str = INTERRUPTED, parent: str | None = None) -> int:
    """Write a stopped launch's verdict: its RUNNING trial runs `status`, its RUNNING Optuna trials (studies named
    `optuna_prefix`...) FAIL, and, given `parent`, the parent run that status. Returns the trial runs marked."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}' and "
                              "attributes.status = 'RUNNING'", max_results=10000)
    for run in runs:
        client.set_terminated(run.info.run_id, status)
    if optuna_storage:
        fail_running_optuna(optuna_storage, optuna_prefix)
    if parent is not None:
        client.set_terminated(parent_run_id, parent)
    return len(runs)


def settle_silent(tracking_uri: str, launches: pd.DataFrame, now: float | None = None) -> int:
    """Settle every launch of `launches` (rows of analysis.runs.load_launches) that MLflow calls RUNNING but whose
    driver is silent past the heartbeat: the parent and its RUNNING trials KILLED, its Optuna trials FAIL.
    Returns how many launches were settled."""
    settled = 0
    for _, row in launches.iterrows():
        if row["status"] == "RUNNING" and is_interrupted(row, now):
            storage = row.get(f"tags.{OPTUNA_TAG}")
            settle(tracking_uri, str(row["experiment_id"]), str(row["run_id"]),
                   storage if isinstance(storage, str) else None, f"{row['study']}-{row['launch']}-",
                   parent=INTERRUPTED)
            settled += 1
    return settled


def fail_running_optuna(storage: str, prefix: str) -> int:
    """Mark FAIL the RUNNING trials of the Optuna studies whose names start with `prefix` (their driver stopped);
    returns how many. A store that does not exist holds none and is not created."""
    import optuna

    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():
        return 0
    failed = 0
    for summary in optuna.get_all_study_summaries(storage):
        if not summary.study_name.startswith(prefix):
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
    return failed
