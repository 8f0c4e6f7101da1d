"""The driver's side of MLflow: the store and the launch's parent run.

Trials log into their own child runs from the workers (trials/tracking.py). The driver creates the store and
the experiment before any trial starts (a fresh SQLite store opened by many processes at once races) and
opens one parent run per launch. (Closing the runs of trials that Tune ended is study_tune.TrialRunStatus.)
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from study_spec import Study

from trials.tracking import ensure_store

ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("platform", "spaces", "trials", "analysis")


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
            "mlflow.note.content": study.description, **code_version_tags()}
    run = client.create_run(experiment_id, run_name=f"{study.name}-{launch}", tags=tags)
    with tempfile.TemporaryDirectory(prefix="msinet-launch-") as tmp:
        (Path(tmp) / "study.yaml").write_text(Path(study.path).read_text())
        (Path(tmp) / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
        (Path(tmp) / "resolved_study.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
        for name in ("study.yaml", "plan.json", "resolved_study.yaml"):
            client.log_artifact(run.info.run_id, str(Path(tmp) / name))
    return experiment_id, run.info.run_id


def code_version_tags(root: Path = ROOT) -> dict[str, str]:
    """What code the launch ran: `mlflow.source.git.commit` (and whether the tree had uncommitted changes) in a
    git checkout; otherwise `msinet.code_digest`, a digest of the shipped Python sources and study files."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0 and commit.stdout.strip():
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10)
            return {"mlflow.source.git.commit": commit.stdout.strip(), "mlflow.source.type": "LOCAL",
                    "msinet.git_dirty": str(bool(status.stdout.strip())).lower()}
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for folder in CODE_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return {"msinet.code_digest": digest.hexdigest()[:16]}


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
