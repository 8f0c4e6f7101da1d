"""The driver's side of MLflow: the store and the launch's parent run.

Trials log into their own child runs from the workers (trials/tracking.py). The driver creates the store and
the experiment before any trial starts (a fresh SQLite store opened by many processes at once races) and
opens one parent run per launch. (Closing the runs of trials that Tune ended is study_tune.TrialRunStatus.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from study_spec import Study, objectives

from analysis.launch_state import HEARTBEAT_TAG, OPTUNA_TAG  # read back by analysis: the one verdict
from trials.tracking import ensure_store

ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("platform", "spaces", "trials", "analysis")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message says which and what to do."""


# The MLflow client reads a login from these variables, else from ~/.mlflow/credentials (username and
# password; platform/study_credentials.py). Nothing hands them on to the trials: on every node MLflow reads
# the file there (cluster.yaml copies it), so no secret travels through Ray's runtime environment and its logs.
LOGIN_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def login_from_env() -> list[str]:
    """The login variables set in this process's environment (a local Ray instance's trials inherit them; the
    nodes of a cluster do not)."""
    return [name for name in LOGIN_ENV if os.environ.get(name)]


DATABASES = ("postgresql", "mysql", "mssql")  # SQLAlchemy URIs MLflow (and Optuna) store runs in directly


def check_uri(tracking_uri: str, flag: str = "--tracking-uri") -> None:
    """A store URI MLflow 3 (or Optuna, with `flag` --optuna-storage) will accept, checked before anything
    starts: a SQLite file that can be created, a database without a password in it, or a server; MLflow's file
    store (a folder) is refused with the alternatives. `flag` names where the URI came from (the default one
    comes from --run-dir)."""
    if tracking_uri.startswith(DATABASES):
        check_no_password(tracking_uri, flag)
        return
    if flag != "--tracking-uri" and not tracking_uri.startswith("sqlite:///"):
        raise TrackingError(f"{flag} {tracking_uri}: expected a SQLite file, e.g. sqlite:////abs/path/optuna.db, or a "
                            "database, e.g. postgresql://USER@HOST:5432/optuna")
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return
    if not tracking_uri.startswith("sqlite:///"):
        kind = "a file: URI" if tracking_uri.startswith("file:") else "a plain path"
        raise TrackingError(
            f"{flag} {tracking_uri}: {kind} means MLflow's file store, which this platform does not use "
            "(MLflow 3 deprecates it, and many processes cannot share it safely). Give a SQLite file, "
            "e.g. sqlite:////abs/path/mlflow.db, a PostgreSQL database, e.g. postgresql://USER@HOST:5432/mlflow, "
            "or a server, e.g. http://HOST:5000; or leave --tracking-uri out for runs/mlflow.db.")
    path = Path(tracking_uri[len("sqlite:///"):])
    if not path.is_absolute():
        raise TrackingError(f"{flag} {tracking_uri}: the SQLite path must be absolute (trials run in "
                            f"their own folders), e.g. sqlite:///{path.resolve()}")
    if path.is_dir():
        raise TrackingError(f"{flag} {tracking_uri}: {path} is a folder; name the database file inside "
                            f"it, e.g. sqlite:///{path / 'mlflow.db'}")
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise TrackingError(f"{flag} {tracking_uri}: {existing} is a file, so {path} cannot be created")
    if existing is not None and not os.access(existing, os.W_OK):
        raise TrackingError(f"{flag} {tracking_uri}: cannot create {path} ({existing} is not writable)")
    if path.exists() and not os.access(path, os.W_OK):
        raise TrackingError(f"{flag} {tracking_uri}: {path} is not writable")


def check_no_password(uri: str, flag: str) -> None:
    """A password written into a database URI would be recorded (launch record, plan, the trials' context in
    Tune's state): refused, with libpq's own place for it (~/.pgpass) instead."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return
    shown = uri.replace(f":{parts.password}@", ":***@", 1)
    raise TrackingError(
        f"{flag} {shown}: the password in the URI would be recorded (the launch record, the plan, Tune's state); "
        f"leave it out ({shown.replace(':***@', '@', 1)}) and put it in ~/.pgpass (mode 600) on every machine "
        f"that connects, one line {parts.hostname}:{parts.port or 5432}:{parts.path.lstrip('/') or '*'}:"
        f"{parts.username}:PASSWORD (libpq reads it; PGPASSFILE names another file).")


def check_database(uri: str, flag: str, timeout: int = 5) -> None:
    """A database store must accept a connection now (host, port, database, and the password from ~/.pgpass),
    not after every trial has failed on it."""
    if not uri.startswith(DATABASES):
        return
    import sqlalchemy

    args = {"connect_timeout": timeout} if uri.startswith("postgresql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            return
    except Exception as error:  # noqa: BLE001 - any driver's refusal, said in one line
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    finally:
        engine.dispose()
    raise TrackingError(f"{flag} {uri}: cannot connect ({reason}). Check the host, port and database name, that "
                        "the server accepts this machine, and the password in ~/.pgpass (or PGPASSFILE); the "
                        "database must exist (createdb).")


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """An http(s) tracking server must answer now, and accept our login, not after every trial has retried;
    a database store must accept a connection."""
    check_database(tracking_uri, "--tracking-uri")
    if not tracking_uri.startswith(("http://", "https://")):
        return
    base = tracking_uri.rstrip("/")
    url = base + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            reason = "" if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    if reason:
        raise TrackingError(
            f"tracking: the MLflow server at {tracking_uri} cannot be reached ({reason} from {url}). Start it "
            f"(on a `ray up cluster.yaml` cluster the head serves it on port 5000), fix --tracking-uri, or leave "
            f"--tracking-uri out to record the study in the local SQLite store under runs/.")
    check_login(base, timeout)


def check_login(base: str, timeout: float) -> None:
    """One authenticated read: a server with accounts answers 401 (no or wrong login) or 403 (no permission)."""
    from mlflow.utils.credentials import read_mlflow_creds

    request = urllib.request.Request(base + "/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = read_mlflow_creds()  # the variables, else ~/.mlflow/credentials: what every client reads
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    elif user and password:
        request.add_header("Authorization", f"Basic {base64.b64encode(f'{user}:{password}'.encode()).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError):
        return  # /health answered; a failure here that is not about the login surfaces in the first real call
    if status not in (401, 403):
        return
    how = ("put the login in ~/.mlflow/credentials, MLflow's own file (the server's machine has it: on a `ray up "
           "cluster.yaml` cluster every node gets the one platform/study_credentials.py made on your machine), or "
           "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    given = login_from_env() or (["~/.mlflow/credentials"] if user or password else [])
    if status == 403:
        problem = f"refuses the account {user!r} (HTTP 403: no permission to read experiments); use an account " \
                  f"with access, or ask the server's admin to grant it"
    elif not given:
        problem = f"requires an account (HTTP 401) and no login is set; {how}"
    else:
        problem = (f"rejected the login given by {', '.join(sorted(given))} (HTTP 401: wrong user name or "
                   f"password); {how}")
    raise TrackingError(f"tracking: the MLflow server at {base} {problem}.")


def open_parent(tracking_uri: str, study: Study, launch: str, plan: dict[str, Any],
                run_dir: Path | None = None) -> tuple[str, str]:
    """(experiment id, parent run id): the study's experiment and this launch's run, with the study and plan.

    A new experiment in a database store (no server to hold artefacts) keeps them under RUN_DIR/artifacts,
    not in MLflow's default ./mlruns of whichever folder a process runs in."""
    from mlflow.tracking import MlflowClient

    location = None
    if run_dir is not None and tracking_uri.startswith(DATABASES):
        location = (run_dir / "artifacts" / "".join(c if c.isalnum() or c in "-_." else "_" for c in study.name)
                    ).as_uri()
    experiment_id = ensure_store(tracking_uri, study.name, location)
    client = MlflowClient(tracking_uri)
    tags = {"msinet.role": "launch", "msinet.study": study.name, "msinet.launch": launch,
            "msinet.scale": study.scale, "msinet.metric": study.metric, "msinet.mode": study.mode,
            "msinet.objectives": ",".join(f"{m}:{mode}" for m, mode in objectives(study)),
            "msinet.test_metric_optimised": str(study.optimise_test_metric).lower(),
            "mlflow.note.content": study.description, OPTUNA_TAG: plan.get("optuna_storage", ""),
            **code_version_tags()}
    if plan.get("from_scratch"):  # a study the authors run from pretrained weights, launched without them
        tags[FROM_SCRATCH_TAG] = plan["from_scratch"]
    run = client.create_run(experiment_id, run_name=f"{study.name}-{launch}",
                            tags={**tags, HEARTBEAT_TAG: str(int(time.time()))})
    with tempfile.TemporaryDirectory(prefix="msinet-launch-") as tmp:
        (Path(tmp) / "study.yaml").write_text(Path(study.path).read_text())
        (Path(tmp) / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
        (Path(tmp) / "resolved_study.yaml").write_text(yaml.safe_dump(study.to_dict(), sort_keys=False))
        for name in ("study.yaml", "plan.json", "resolved_study.yaml"):
            client.log_artifact(run.info.run_id, str(Path(tmp) / name))
    return experiment_id, run.info.run_id


FROM_SCRATCH_TAG = "msinet.from_scratch"  # study_plan.from_scratch's sentence; the report repeats it


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

    client = MlflowClient(tracking_uri)
    client.update_run(run_id, status="RUNNING")
    beat(tracking_uri, run_id)


def beat(tracking_uri: str, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri).set_tag(run_id, HEARTBEAT_TAG, str(int(time.time())))


def close_parent(tracking_uri: str, run_id: str, status: str, files: dict[str, str] | None = None) -> None:
    """Log the leaderboard files (name -> text) and end the run: FINISHED, FAILED or KILLED (interrupted)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="msinet-launch-") as tmp:
        for name, text in (files or {}).items():
            (Path(tmp) / name).write_text(text)
            client.log_artifact(run_id, str(Path(tmp) / name))
    client.set_terminated(run_id, status)


GPU_HOURS = "gpu_hours"  # metric: the GPU time a trial held (GPU share x time), its launch's total on the parent


def add_gpu_hours(tracking_uri: str, experiment_id: str, parent_run_id: str, run_name: str, hours: float) -> None:
    """Add one attempt's GPU time to the trial run's `gpu_hours` (its steps count the attempts)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.`msinet.trial` = '{run_name}' and "
                              f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=1)
    if runs:
        run = runs[0]
        steps = len(client.get_metric_history(run.info.run_id, GPU_HOURS))
        client.log_metric(run.info.run_id, GPU_HOURS, run.data.metrics.get(GPU_HOURS, 0.0) + hours, step=steps)


def record_gpu_hours(tracking_uri: str, experiment_id: str, parent_run_id: str) -> dict[str, float]:
    """The launch's GPU-hours per phase (and `total`), from its trials' runs, logged on the parent run as
    `gpu_hours` and `gpu_hours/PHASE`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
                              max_results=10000)
    phases: dict[str, float] = {}
    for run in runs:
        phase = run.data.tags.get("msinet.phase", "")
        phases[phase] = phases.get(phase, 0.0) + run.data.metrics.get(GPU_HOURS, 0.0)
    hours = {**phases, "total": sum(phases.values())}
    for phase, value in hours.items():
        client.log_metric(parent_run_id, GPU_HOURS if phase == "total" else f"{GPU_HOURS}/{phase}", value)
    return hours
