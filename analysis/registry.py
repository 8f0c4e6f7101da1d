"""The MLflow model registry side of a study: one registered model `msinet-<study>` whose alias `champion`
points at the version of the study's best retrain.

"Best" is by the study's *validation* metric (a test metric is never used to choose; a study that optimises
one falls back to `val/mAP`). When the launch has retrains of the group `final` (the chosen configuration
retrained on every training id, the paper-comparable number) the champion is one of those: they have no
validation hold-out, so among several the validation metric decides where they logged it, else the score
of the configuration each retrains (tags `msinet.selected_on`, `msinet.selected_score`), else the first to
finish. Only the `MlflowClient` API is used; nothing here imports torch.

The version is registered from the logged model itself (`models:/<model id>`), and the logged model's tag
`mlflow.modelVersions` lists it (what its page reads: "Registered" rather than "Not registered"). The version's
description says what the choice rests on: the validation score with its bootstrap interval and the size of
the validation split (queries, identities), the runner-up's, "undecided" when the two intervals overlap
(analysis.uncertainty.choice), the genotype with its decision margins, and the test scores, which were never
used to choose. The registered model's description names the current champion the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from analysis.runs import RunNotFound, _client, load_runs, load_runs_by_id, study_experiment_id
from analysis.uncertainty import candidate, choice, choice_text
from trials.tracking import global_tracking_uri

DECISION_TAG = "msinet.genotype_margins"
MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # on a logged model: the registered versions its page lists
TEST_SCORES = ("mAP", "rank1")

ALIAS = "champion"
MODEL_URI_TAG = "msinet.model_uri"
CHAMPION_TAG = "msinet.champion"
FALLBACK_METRIC = "val/mAP"


def model_name(study: str) -> str:
    return f"msinet-{study}"


def selection_metric(metric: str) -> str:
    """The metric the champion is chosen by: the study's when it is a validation metric, else val/mAP."""
    return metric if metric.startswith("val/") else FALLBACK_METRIC


def choose_champion(runs: pd.DataFrame, metric: str, mode: str) -> tuple[pd.Series, str, dict | None] | None:
    """(the champion's row, why, the choice between the candidates: `uncertainty.choice`) among finished
    retrains that logged a model; None when there is none."""
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
        decision = choice([candidate(str(row["trial"]), run_metrics(row), metric) for _, row in pool.iterrows()],
                          mode)
        return pool.loc[best], f"best {what} by {metric} ({mode}): {choice_text(decision, metric)}", decision
    chosen_on = pool.get("tags.msinet.selected_on", pd.Series(None, index=pool.index, dtype=object))
    scores = pd.to_numeric(pool.get("tags.msinet.selected_score", pd.Series(math.nan, index=pool.index)),
                           errors="coerce").where(chosen_on == metric)
    if scores.notna().any():  # finals: the one whose configuration scored best before it was retrained
        best = scores.idxmax() if mode == "max" else scores.idxmin()
        return pool.loc[best], (f"{what} of the configuration with the best {metric} ({mode}): {scores[best]:.4g} "
                                f"in {pool.loc[best, 'tags.msinet.selected_from']}"), None
    first = pool.sort_values("end_time", kind="stable").iloc[0]
    return first, f"{what} (none logged {metric}; the first to finish)", None


def run_metrics(row: pd.Series) -> dict[str, Any]:
    """A runs-frame row's metrics by their MLflow names (`val/mAP`, ...)."""
    return {key[len("metrics."):]: value for key, value in row.items() if str(key).startswith("metrics.")}


def version_description(row: pd.Series, reason: str) -> str:
    """What the registered version rests on (module docstring), in Markdown."""
    metrics = run_metrics(row)
    genotype = row.get(f"tags.{DECISION_TAG}")
    genotype = genotype if isinstance(genotype, str) and genotype else row.get("genotype")
    tests = []
    for prefix in ("source", "target"):
        scores = [f"{prefix}/{name} {float(metrics[f'{prefix}/{name}']):.4f}" for name in TEST_SCORES
                  if pd.notna(metrics.get(f"{prefix}/{name}"))]
        if scores:
            size = candidate("", metrics, f"{prefix}/mAP")
            tests.append(", ".join(scores) + (f" ({size['queries']:.0f} queries)" if pd.notna(size["queries"]) else ""))
    return "\n".join([f"**{row['trial']}** (run `{row['run_id']}`), genotype `{genotype}`.", "",
                      f"- **chosen**: {reason}",
                      f"- **test** (never used to choose): {'; '.join(tests) or 'none logged'}"])


BY_HAND = "promoted by hand"


def promote(tracking_uri: str, study: str, run_id: str, reason: str = BY_HAND) -> dict[str, Any]:
    """Register the run's logged model as a version of `msinet-<study>` (once per run) and point `champion`
    at it; the run gets the tag `msinet.champion=true`, the previous champion's run loses it. Promoting the
    champion by hand changes nothing: its version keeps the description of what its choice rested on."""
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
    model_id = source.rsplit("/", 1)[-1]  # models:/<model id>
    try:
        previous = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        previous = None

    def record(version, why: str, description: str) -> dict[str, Any]:
        return {"model": name, "version": int(version), "alias": ALIAS, "run_id": run_id, "trial": str(run["trial"]),
                "uri": f"models:/{name}@{ALIAS}", "reason": why, "model_id": model_id, "description": description}

    if reason == BY_HAND and previous is not None and previous.run_id == run_id:
        return record(previous.version, "already the champion", previous.description)
    description = version_description(run, reason)
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = client.update_model_version(name, existing[0].version, description=description)
    else:  # from the logged model itself, so that the registry and the logged model agree
        with global_tracking_uri(tracking_uri):  # the registry resolves `models:/<id>` with MLflow's global URI
            version = client.create_model_version(
                name, f"models:/{model_id}", run_id=run_id, model_id=model_id, description=description,
                tags={"msinet.trial": str(run["trial"]), "genotype": str(run["genotype"])})
    link_version(client, model_id, name, version.version)
    client.set_registered_model_alias(name, ALIAS, version.version)
    client.set_model_version_tag(name, version.version, "msinet.champion_reason", reason)
    client.update_registered_model(name, description=f"MSINet networks of study {study}; alias {ALIAS} (the one "
                                                     f"to deploy): version {version.version}, {description}")
    if previous is not None and previous.run_id and previous.run_id != run_id:
        client.delete_tag(previous.run_id, CHAMPION_TAG)
    client.set_tag(run_id, CHAMPION_TAG, "true")
    return record(version.version, reason, description)


def link_version(client, model_id: str, name: str, version: int | str) -> None:
    """List the version on the logged model (tag `mlflow.modelVersions`, once), as `mlflow.register_model`
    does: with a SQLite store nothing else would, and the model's page would say "Not registered"."""
    tags = client.get_logged_model(model_id).tags
    listed = json.loads(tags.get(MODEL_VERSIONS_TAG) or "[]")
    # a tracking server adds the entry itself (version as a number); SQLite stores leave it to the client
    if not any(str(entry.get("name")) == name and str(entry.get("version")) == str(version) for entry in listed):
        listed.append({"name": name, "version": version})
        client.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps(listed)})


def register_champion(tracking_uri: str, study: str, launch: str, metric: str, mode: str) -> dict[str, Any] | None:
    """At the end of a launch: promote its best retrain (module docstring); None when it has none."""
    chosen = choose_champion(load_runs(tracking_uri, study, launch), metric, mode)
    if chosen is None:
        return None
    row, reason, decision = chosen
    result = promote(tracking_uri, study, str(row["run_id"]), f"launch {launch}: {reason}")
    return {**result, "choice": decision}
