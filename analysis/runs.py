"""MLflow -> pandas: a study's launches, its trials and their artefacts as DataFrames.

One row per run. The fixed columns (`RUN_COLUMNS`: trial, phase, kind, group, status, error, genotype, wall
time, ...) come from the tags the platform sets (analysis/README.md has the contract); after them every
param as `params.<name>` (text, as logged), every metric's latest value as `metrics.<name>` and every tag as
`tags.<name>`: the column names of `mlflow.search_runs`, so that MLflow users find their way. Only the
`MlflowClient` API is used (no fluent tracking URI, no global state).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from analysis.genotypes import NUM_SLOTS, OPERATIONS, alpha_frame
from analysis.launch_state import trials_as_seen

REPO_ROOT = Path(__file__).resolve().parent.parent
ALPHA_ARTEFACT = "alpha_history.npy"
METRICS_ARTEFACT = "metrics.json"
ROLE_TAG = "msinet.role"
PARENT_TAG = "mlflow.parentRunId"

RUN_COLUMNS = ["run_id", "run_name", "trial", "launch", "phase", "kind", "group", "status", "error", "stopped_early",
               "genotype", "space", "start_time", "end_time", "wall_seconds", "parent_run_id", "experiment_id"]
LAUNCH_COLUMNS = ["run_id", "run_name", "launch", "study", "scale", "metric", "mode", "test_metric_optimised",
                  "status", "start_time", "end_time", "wall_seconds", "experiment_id"]


class StudyNotFound(LookupError):
    """No MLflow experiment is named like the study; the message lists those that exist."""


class LaunchNotFound(LookupError):
    """The study has no launch with that id; the message lists those that exist."""


class RunNotFound(LookupError):
    """No run has that id in the store; the message lists the experiments that exist."""


def default_tracking_uri() -> str:
    """The platform's default store: `runs/mlflow.db` under the repository root, as an absolute sqlite URI."""
    return f"sqlite:///{REPO_ROOT / 'runs' / 'mlflow.db'}"


def experiment_names(tracking_uri: str) -> list[str]:
    """The names of the store's active experiments (a missing local store has none and is not created)."""
    if not _store_exists(tracking_uri):
        return []
    client = _client(tracking_uri)
    names, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        names.extend(experiment.name for experiment in page)
        token = page.token
        if not token:
            return sorted(names)


def study_experiment_id(tracking_uri: str, study: str) -> str:
    """The id of the study's experiment (what the UI's runs-table link needs); raises StudyNotFound."""
    experiment = _client(tracking_uri).get_experiment_by_name(study) if _store_exists(tracking_uri) else None
    if experiment is None or experiment.lifecycle_stage == "deleted":
        names = experiment_names(tracking_uri)
        where = "" if _store_exists(tracking_uri) else " (no store exists there yet)"
        listed = ", ".join(names) if names else "none"
        raise StudyNotFound(
            f"study {study!r} not found: the MLflow store {tracking_uri}{where} has no experiment of that name. "
            f"Experiments there: {listed}. A study's experiment appears once it has been launched "
            f"(python platform/launch.py --study {study}); pass --tracking-uri to read another store.")
    return experiment.experiment_id


def load_launches(tracking_uri: str, study: str) -> pd.DataFrame:
    """The study's parent runs (tag `msinet.role` = launch), oldest first; raises StudyNotFound."""
    experiment_id = study_experiment_id(tracking_uri, study)
    runs = _search(_client(tracking_uri), experiment_id, f"tags.`{ROLE_TAG}` = 'launch'")
    frame = _frame([_launch_row(run) for run in runs], LAUNCH_COLUMNS)
    return frame.sort_values("start_time", kind="stable", ignore_index=True)


def select_launches(launches: pd.DataFrame, launch: str = "latest") -> pd.DataFrame:
    """`latest` (the most recent launch; none when the study has none), `all`, or one launch id / run id."""
    if launch == "all" or (launch == "latest" and launches.empty):
        return launches
    if launch == "latest":
        return launches.loc[[launches["start_time"].idxmax()]].reset_index(drop=True)
    chosen = launches[(launches["launch"] == launch) | (launches["run_id"] == launch)
                      | (launches["run_name"] == launch)]
    if chosen.empty:
        known = ", ".join(str(v) for v in launches["launch"]) or "none"
        study = launches["study"].iloc[0] if not launches.empty else "the study"
        raise LaunchNotFound(f"{study} has no launch {launch!r}; its launches: {known} (or use latest / all)")
    return chosen.reset_index(drop=True)


def load_runs(tracking_uri: str, study: str, launch: str = "latest") -> pd.DataFrame:
    """The trials (child runs) of one launch of the study, or of all its launches (`launch="all"`).

    Raises StudyNotFound / LaunchNotFound; a study without launches, or a launch without trials, gives an
    empty frame with the fixed columns, so callers can report it rather than fail.
    """
    return load_trials(tracking_uri, select_launches(load_launches(tracking_uri, study), launch))


def load_trials(tracking_uri: str, launches: pd.DataFrame) -> pd.DataFrame:
    """The child runs (tag `mlflow.parentRunId`) of the given launches (rows of `load_launches`); a RUNNING trial
    of a launch whose driver is gone reads KILLED (analysis.launch_state: one verdict)."""
    client = _client(tracking_uri)
    runs = []
    for parent, experiment_id in zip(launches["run_id"], launches["experiment_id"], strict=True):
        runs.extend(_search(client, experiment_id, f"tags.`{PARENT_TAG}` = '{parent}'"))
    return trials_as_seen(_frame([_run_row(run) for run in runs], RUN_COLUMNS), launches)


def load_runs_by_id(tracking_uri: str, run_ids: Iterable[str]) -> pd.DataFrame:
    """The given runs, in the given order, whichever experiments they are in; raises RunNotFound."""
    from mlflow.exceptions import MlflowException

    run_ids = list(run_ids)
    if not _store_exists(tracking_uri):
        raise RunNotFound(_missing_run_message(run_ids[0] if run_ids else "", tracking_uri, []))
    client = _client(tracking_uri)
    rows = []
    for run_id in run_ids:
        try:
            rows.append(_run_row(client.get_run(run_id)))
        except MlflowException:
            raise RunNotFound(_missing_run_message(run_id, tracking_uri, experiment_names(tracking_uri))) from None
    return _frame(rows, RUN_COLUMNS)


def load_alpha_history(tracking_uri: str, run_id: str) -> pd.DataFrame:
    """softmax(α) of a search trial per epoch (its `alpha_history.npy`), in the long form of
    `genotypes.alpha_frame`; empty when the run has no such artefact (e.g. it died before the first epoch)."""
    client = _client(tracking_uri)
    if ALPHA_ARTEFACT not in {artefact.path for artefact in client.list_artifacts(run_id)}:
        return alpha_frame(np.zeros((0, NUM_SLOTS, len(OPERATIONS))))
    with tempfile.TemporaryDirectory(prefix="msinet-analysis-") as tmp:
        array = np.load(client.download_artifacts(run_id, ALPHA_ARTEFACT, tmp))
    return alpha_frame(array)


def load_cmc(tracking_uri: str, runs: pd.DataFrame, key: str = "source/cmc") -> pd.DataFrame:
    """The CMC curves (`metrics.json` key, rank 1..n) of the given runs, long form: trial, run_id, rank, rate.

    Runs without the artefact or the key (search trials, unfinished or in-domain runs for `target/cmc`) are
    left out.
    """
    client = _client(tracking_uri)
    rows = []
    for trial, run_id in zip(runs["trial"], runs["run_id"], strict=True):
        report = _json_artefact(client, run_id, METRICS_ARTEFACT)
        curve = report.get(key) if isinstance(report, dict) else None
        if isinstance(curve, list):
            rows.extend({"trial": trial, "run_id": run_id, "rank": rank, "rate": float(rate)}
                        for rank, rate in enumerate(curve, start=1))
    return pd.DataFrame(rows, columns=["trial", "run_id", "rank", "rate"])


def fetch_artefact(tracking_uri: str, run_id: str, name: str, dest: Path) -> Path | None:
    """Copy the run's root artefact `name` to the file `dest`; None when the run has no such artefact."""
    client = _client(tracking_uri)
    if name not in {artefact.path for artefact in client.list_artifacts(run_id)}:
        return None
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="msinet-analysis-") as tmp:
        dest.write_bytes(Path(client.download_artifacts(run_id, name, tmp)).read_bytes())
    return dest


def space_names(space: Any) -> list[str]:
    """The outer hyperparameters of a trial from its `msinet.space` tag ("lr,arch_lr"; empty or missing: none)."""
    if not isinstance(space, str):
        return []
    return [name.strip() for name in space.split(",") if name.strip()]


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def _store_exists(tracking_uri: str) -> bool:
    """A local store that is not there yet (opening it would create it) holds no study."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///"):]).is_file()
    if tracking_uri.startswith("file:"):
        return Path(unquote(urlparse(tracking_uri).path)).is_dir()
    if "://" not in tracking_uri:
        return Path(tracking_uri).is_dir()
    return True


def _missing_run_message(run_id: str, tracking_uri: str, names: list[str]) -> str:
    listed = ", ".join(names) if names else "none"
    return (f"run {run_id!r} not found in the MLflow store {tracking_uri}. Experiments there: {listed}. "
            f"Run ids are the 32-character ids shown in the MLflow UI and in a report's leaderboard "
            f"(column run_id); pass --tracking-uri to read another store.")


def _search(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _json_artefact(client, run_id: str, name: str) -> Any:
    if name not in {artefact.path for artefact in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory(prefix="msinet-analysis-") as tmp:
        try:
            return json.loads(Path(client.download_artifacts(run_id, name, tmp)).read_text())
        except json.JSONDecodeError:
            return None


def _times(info) -> dict[str, Any]:
    start = pd.Timestamp(info.start_time, unit="ms", tz="UTC") if info.start_time else pd.NaT
    end = pd.Timestamp(info.end_time, unit="ms", tz="UTC") if info.end_time else pd.NaT
    finished = info.status != "RUNNING" and info.start_time and info.end_time
    wall = (info.end_time - info.start_time) / 1000.0 if finished else math.nan
    return {"start_time": start, "end_time": end, "wall_seconds": wall}


def _columns(run) -> dict[str, Any]:
    return {**{f"params.{k}": v for k, v in run.data.params.items()},
            **{f"metrics.{k}": float(v) for k, v in run.data.metrics.items()},
            **{f"tags.{k}": v for k, v in run.data.tags.items()}}


def _launch_row(run) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "run_name": run.info.run_name, "launch": tags.get("msinet.launch"),
            "study": tags.get("msinet.study"), "scale": tags.get("msinet.scale"),
            "metric": tags.get("msinet.metric"), "mode": tags.get("msinet.mode"),
            "test_metric_optimised": tags.get("msinet.test_metric_optimised", "").lower() == "true",
            "status": run.info.status, **_times(run.info), "experiment_id": run.info.experiment_id,
            **_columns(run)}


def _run_row(run) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "run_name": run.info.run_name,
            "trial": tags.get("msinet.trial", run.info.run_name), "launch": tags.get("msinet.launch"),
            "phase": tags.get("msinet.phase"), "kind": tags.get("msinet.kind"), "group": tags.get("msinet.group"),
            "status": run.info.status, "error": tags.get("error"),
            "stopped_early": tags.get("msinet.stopped_early", "").lower() == "true",
            "genotype": tags.get("genotype") or None, "space": tags.get("msinet.space", ""),
            **_times(run.info), "parent_run_id": tags.get(PARENT_TAG), "experiment_id": run.info.experiment_id,
            **_columns(run)}


def _frame(rows: list[dict[str, Any]], fixed: list[str]) -> pd.DataFrame:
    """Fixed columns first (present even with no rows), then params., metrics. and tags. columns by name."""
    extra = sorted({key for row in rows for key in row} - set(fixed),
                   key=lambda k: (("params.", "metrics.", "tags.").index(k.split(".")[0] + "."), k))
    frame = pd.DataFrame(rows, columns=fixed + extra)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["wall_seconds"] = frame["wall_seconds"].astype(float)
    return frame
