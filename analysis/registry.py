"""The MLflow model registry side of a study: one registered model `msinet-<study>` whose alias `champion`
points at the version of the study's best retrain.

"Best" is by the study's *validation* metric (a test metric is never used to choose; a study that optimises
one falls back to `val/mAP`). When the launch has retrains of the group `final` (the chosen configuration
retrained on every training id, the paper-comparable number) the champion is one of those: they have no
validation hold-out, so among several the validation metric decides where they logged it, else the score
of the configuration each retrains (tags `msinet.selected_on`, `msinet.selected_score`), else the first to
finish. Only the `MlflowClient` API is used; nothing here imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.runs import RunNotFound, _client, load_runs, load_runs_by_id, study_experiment_id

ALIAS = "champion"
MODEL_URI_TAG = "msinet.model_uri"
CHAMPION_TAG = "msinet.champion"
FALLBACK_METRIC = "val/mAP"


def model_name(study: str) -> str:
    return f"msinet-{study}"


def selection_metric(metric: str) -> str:
    """The metric the champion is chosen by: the study's when it is a validation metric, else val/mAP."""
    return metric if metric.startswith("val/") else FALLBACK_METRIC


def choose_champion(runs: pd.DataFrame, metric: str, mode: str) -> tuple[pd.Series, str] | None:
    """(the champion's row, why) among finished retrains that logged a model; None when there is none."""
    column = f"tags.{MODEL_URI_TAG}"
    if column not in runs:
        return None
    candidates = runs[(runs["kind"] == "retrain") & (runs["status"] == "FINISHED") & runs[column].notna()]
    final = candidates[candidates["group"] == "final"]
    pool, what = (final, "final retrain") if not final.empty else (candidates, "retrain")
    if pool.empty:
        return None
    metric = selection_metric(metric)
    values = pd.to_numeric(pool.get(f"metrics.{metric}", pd.Series(math.nan, index=pool.index)), errors="coerce")
    if values.notna().any():
        best = values.idxmax() if mode == "max" else values.idxmin()
        return pool.loc[best], f"best {what} by {metric} ({mode}): {values[best]:.4g}"
    chosen_on = pool.get("tags.msinet.selected_on", pd.Series(None, index=pool.index, dtype=object))
    scores = pd.to_numeric(pool.get("tags.msinet.selected_score", pd.Series(math.nan, index=pool.index)),
                           errors="coerce").where(chosen_on == metric)
    if scores.notna().any():  # finals: the one whose configuration scored best before it was retrained
        best = scores.idxmax() if mode == "max" else scores.idxmin()
        return pool.loc[best], (f"{what} of the configuration with the best {metric} ({mode}): {scores[best]:.4g} "
                                f"in {pool.loc[best, 'tags.msinet.selected_from']}")
    first = pool.sort_values("end_time", kind="stable").iloc[0]
    return first, f"{what} (none logged {metric}; the first to finish)"


def promote(tracking_uri: str, study: str, run_id: str, reason: str = "promoted by hand") -> dict[str, Any]:
    """Register the run's logged model as a version of `msinet-<study>` (once per run) and point `champion`
    at it; the run gets the tag `msinet.champion=true`, the previous champion's run loses it."""
    from mlflow.exceptions import MlflowException

    experiment_id = study_experiment_id(tracking_uri, study)
    run = load_runs_by_id(tracking_uri, [run_id]).iloc[0]
    if str(run["experiment_id"]) != str(experiment_id):
        raise RunNotFound(f"run {run_id} belongs to another experiment (id {run['experiment_id']}), not to "
                          f"study {study!r} (id {experiment_id})")
    source = run.get(f"tags.{MODEL_URI_TAG}")
    if not isinstance(source, str) or not source:
        raise RunNotFound(f"run {run_id} ({run['trial']}) has no logged model (tag {MODEL_URI_TAG}): only "
                          "finished retrain runs have one")
    client, name = _client(tracking_uri), model_name(study)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"MSINet networks of study {study}; "
                                                          f"alias {ALIAS}: the one to deploy")
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = existing[0]
    else:
        model_id = source.rsplit("/", 1)[-1]  # models:/<model id>
        version = client.create_model_version(
            name, client.get_logged_model(model_id).artifact_location, run_id=run_id, model_id=model_id,
            tags={"msinet.trial": str(run["trial"]), "genotype": str(run["genotype"])})
    try:
        previous = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        previous = None
    client.set_registered_model_alias(name, ALIAS, version.version)
    client.set_model_version_tag(name, version.version, "msinet.champion_reason", reason)
    if previous is not None and previous.run_id and previous.run_id != run_id:
        client.delete_tag(previous.run_id, CHAMPION_TAG)
    client.set_tag(run_id, CHAMPION_TAG, "true")
    return {"model": name, "version": int(version.version), "alias": ALIAS, "run_id": run_id,
            "trial": str(run["trial"]), "uri": f"models:/{name}@{ALIAS}", "reason": reason}


def register_champion(tracking_uri: str, study: str, launch: str, metric: str, mode: str) -> dict[str, Any] | None:
    """At the end of a launch: promote its best retrain (module docstring); None when it has none."""
    chosen = choose_champion(load_runs(tracking_uri, study, launch), metric, mode)
    if chosen is None:
        return None
    row, reason = chosen
    return promote(tracking_uri, study, str(row["run_id"]), f"launch {launch}: {reason}")
