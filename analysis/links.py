"""Where a study's runs can be seen in the MLflow UI, and the commands that serve a local store (MLflow) and
the launch's Optuna storage (optuna-dashboard).

MLflow 3.17's UI opens an experiment on its GenAI traces overview, where training runs are not listed; the
runs table has its own address, which reports and the platform print instead of the bare experiment link.
"""

from __future__ import annotations

import shlex

LOCAL_HOST = "127.0.0.1"


def runs_table_url(base_url: str, experiment_id: str) -> str:
    """The UI page listing an experiment's runs (not the traces overview the UI opens by default)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The UI page of one run (its description first, then its parameters and metrics)."""
    return f"{runs_table_url(base_url, experiment_id)}/{run_id}"


def is_server(tracking_uri: str) -> bool:
    """True for a tracking server (http/https), false for a store read straight from disk (sqlite, file)."""
    return tracking_uri.startswith(("http://", "https://"))


def ui_base_url(tracking_uri: str, port: int = 5000) -> str:
    """The UI's address: the server itself, or the local `mlflow ui` that `ui_command` starts."""
    if is_server(tracking_uri):
        return tracking_uri.rstrip("/")
    return f"http://{LOCAL_HOST}:{port}"


def ui_command(tracking_uri: str, port: int = 5000) -> str:
    """The shell command serving a sqlite/file store in the UI; for a server, its URL (nothing to start)."""
    if is_server(tracking_uri):
        return ui_base_url(tracking_uri)
    return f"mlflow ui --backend-store-uri {shlex.quote(tracking_uri)} --port {int(port)}"


def dashboard_command(optuna_storage: str, port: int = 8080) -> str:
    """The shell command serving an Optuna storage (the launch's `optuna.db`) in optuna-dashboard, at
    http://127.0.0.1:PORT: Optuna's own view of the studies (history, importances, parallel coordinates)."""
    return f"optuna-dashboard {shlex.quote(optuna_storage)} --host {LOCAL_HOST} --port {int(port)}"
