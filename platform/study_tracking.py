"""The driver's side of MLflow: the store, the launch's parent run, and trial runs the workers could not close.

Trials log into their own child runs from the workers (trials/tracking.py). The driver creates the store and
the experiment before any trial starts (a fresh SQLite store opened by many processes at once races), opens
one parent run per launch, and marks a child run FAILED or early-stopped when Tune, not the trial, ended it.
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from ray import tune
from study_spec import Study

from trials.tracking import MLflowHook, ensure_store
from trials.tune_entry import trial_run_name


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message says which and what to do."""


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """An http(s) tracking server must answer `/health` now, not after every trial has retried against it."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise TrackingError(
        f"tracking: the MLflow server at {tracking_uri} cannot be reached ({reason} from {url}). Start it "
        f"(on a `ray up cluster.yaml` cluster the head serves it on port 5000), fix --tracking-uri, or leave "
        f"--tracking-uri out to record the study in the local SQLite store under runs/.")


def open_parent(tracking_uri: str, study: Study, launch: str, plan: dict[str, Any]) -> tuple[str, str]:
    """(experiment id, parent run id): the study's experiment and this launch's run, with the study and plan."""
    from mlflow.tracking import MlflowClient

    experiment_id = ensure_store(tracking_uri, study.name)
    client = MlflowClient(tracking_uri)
    tags = {"msinet.role": "launch", "msinet.study": study.name, "msinet.launch": launch,
            "msinet.scale": study.scale, "msinet.metric": study.metric, "msinet.mode": study.mode,
            "msinet.test_metric_optimised": str(study.optimise_test_metric).lower(),
            "mlflow.note.content": study.description}
    run = client.create_run(experiment_id, run_name=f"{study.name}-{launch}", tags=tags)
    with tempfile.TemporaryDirectory(prefix="msinet-launch-") as tmp:
        (Path(tmp) / "study.yaml").write_text(Path(study.path).read_text())
        (Path(tmp) / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
        (Path(tmp) / "resolved_study.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
        for name in ("study.yaml", "plan.json", "resolved_study.yaml"):
            client.log_artifact(run.info.run_id, str(Path(tmp) / name))
    return experiment_id, run.info.run_id


def reopen_parent(tracking_uri: str, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri).update_run(run_id, status="RUNNING")


def close_parent(tracking_uri: str, run_id: str, status: str, files: dict[str, str] | None = None) -> None:
    """Log the leaderboard files (name -> text) and end the run: FINISHED, FAILED or KILLED (interrupted)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="msinet-launch-") as tmp:
        for name, text in (files or {}).items():
            (Path(tmp) / name).write_text(text)
            client.log_artifact(run_id, str(Path(tmp) / name))
    client.set_terminated(run_id, status)


def trial_error(trial) -> str:
    """The last line of a failed trial's traceback (the exception itself), or why there is none."""
    try:
        error = trial.get_error()
    except Exception:  # noqa: BLE001 - a missing error file must not hide the failure itself
        error = None
    lines = [line for line in str(error or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the trial's worker died without an error message"


class TrialRunStatus(tune.Callback):
    """Closes a trial's MLflow run when Tune ended the trial: an error after the last retry, or early stopping."""

    def __init__(self, context: dict[str, Any]):
        self.context = context

    def _hook(self, trial) -> MLflowHook:
        c = self.context
        return MLflowHook(c["tracking_uri"], c["experiment_id"], c["parent_run_id"],
                          trial_run_name(c["phase"], trial.trial_id), params=trial.config)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._hook(trial).fail(trial_error(trial))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        epochs = trial.config.get("epochs")
        if epochs is not None and result.get("epoch", 0) < epochs:  # a scheduler stopped it
            hook = self._hook(trial)
            run_id = hook.open()
            hook.client.set_tag(run_id, "msinet.stopped_early", "true")
            hook.client.set_tag(run_id, "msinet.stopped_epoch", str(result.get("epoch", 0)))
            if trial.checkpoint is not None:
                with trial.checkpoint.as_directory() as directory:
                    hook.finish(result, Path(directory))
            else:
                hook.finish(result)
