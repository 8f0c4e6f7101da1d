"""What a person reads first about a launch: the description of each trial run, the genotype with its decision
margins, the evidence behind each choice, the parent run's summary, and each Optuna trial's user attributes.

MLflow's UI shows a run's `mlflow.note.content` tag as the description at the top of its page, above the
system metrics and charts it lists first; so each trial run gets one saying what the trial was, what it
scored (validation with its interval and size; test, never used to choose) and what it is for. The driver
writes them when Tune reports a trial complete or failed, from the trial's last result, through the
MlflowClient API (nothing here runs on a worker). The numbers come from `analysis.uncertainty` (intervals,
choices) and `analysis.margins` (decided slots): one definition each, shared with the report and the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NOTE_TAG = "mlflow.note.content"
DECISION_TAG = "msinet.genotype_margins"
SCORES = (("mAP", "mAP"), ("rank1", "rank-1"))


def genotype_decision(result: Mapping[str, Any], context: Mapping[str, Any]) -> str | None:
    """The genotype with its decision margins (`exc?-ag/... (3 of 12 slots decided, margins ...)`): a search
    trial's from its last softmax(α), a retrain's from the search that found it; None when not searched."""
    from analysis.margins import decision_text

    genotype = result.get("genotype")
    if not genotype:
        return None
    if result.get("alpha/weights") is not None:
        return decision_text(str(genotype), result["alpha/weights"])
    return context.get("decisions", {}).get(str(genotype))


def margin_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """`alpha/min_margin` and `alpha/decided_slots` of a search trial's last softmax(α); none otherwise."""
    import numpy as np

    from analysis.margins import THRESHOLD, weight_margins

    weights = result.get("alpha/weights")
    if weights is None:
        return {}
    margins = weight_margins(np.asarray(weights, dtype=float))
    return {"alpha/min_margin": float(margins.min()), "alpha/decided_slots": float((margins >= THRESHOLD).sum())}


def scores_text(result: Mapping[str, Any], prefix: str) -> str:
    """`val/mAP 0.4294 (95 % CI 0.310-0.550), rank-1 0.5000 (...) on 32 queries of 16 identities`."""
    from analysis.uncertainty import candidate, score_text, size_text

    parts = []
    for key, label in SCORES:
        item = candidate("", result, f"{prefix}/{key}")
        if not math.isnan(item["value"]):
            parts.append(f"{prefix}/{label} " + (score_text(item) if prefix == "val" else f"{item['value']:.4f}"))
    if not parts:
        return ""
    return ", ".join(parts) + f" on {size_text(candidate('', result, f'{prefix}/mAP'))}"


def trial_note(context: Mapping[str, Any], trial_id: str, result: Mapping[str, Any] | None, status: str,
               decision: str | None = None) -> str:
    """The run's description (Markdown): what the trial was, its status, genotype with margins, scores and
    what it is for."""
    result = result or {}
    kind, phase = context["kind"], context["phase"]
    title = "Final retrain" if context.get("final") else f"{kind.capitalize()} trial"
    lines = [f"**{title} `{trial_id}`** of study `{context.get('study', '?')}`, phase `{phase}`, launch "
             f"`{context['launch']}`" + (f": {context['phase_description']}" if context.get("phase_description")
                                         else "."), "", f"- **status**: {status}"]
    genotype = decision or result.get("genotype")
    if genotype:
        from analysis.margins import THRESHOLD

        marks = (f" (`?`: a slot whose decision margin is below {THRESHOLD:g}, argmax of near-uniform weights)"
                 if "?" in str(genotype) else "")
        lines.append(f"- **genotype**: `{genotype}`{marks}")
    validation = scores_text(result, "val")
    if validation:
        lines.append(f"- **validation** (held-out training identities; trials are chosen by it): {validation}")
    tests = [text for text in (scores_text(result, "source"), scores_text(result, "target")) if text]
    if tests:
        lines.append(f"- **test** (reported, never used to choose): {'; '.join(tests)}")
    lines.append(f"- **what it is for**: {purpose(context)}")
    return "\n".join(lines)


def purpose(context: Mapping[str, Any]) -> str:
    """What the trial is for: a search proposes, a retrain competes for the champion, a final retrain reports."""
    metric = context.get("metric", "val/mAP")
    study = context.get("study", "STUDY")
    if context.get("final"):
        return ("the paper-comparable number: a configuration chosen on the validation identities, retrained on "
                "every training identity and tested once; the champion of `msinet-" + study + "` is one of these")
    if context["kind"] == "search":
        return (f"proposes a genotype; the best distinct genotypes by {metric} are handed to the next phase to be "
                "retrained (a searched genotype is not a result until it is retrained and tested)")
    return (f"a retrained network and a candidate for the champion of `msinet-{study}` (the best retrain by the "
            "validation metric; test scores are never used to choose)")


def annotate_trial_run(client, run_id: str, context: Mapping[str, Any], trial_id: str,
                       result: Mapping[str, Any] | None, status: str) -> None:
    """The run's description, its genotype-with-margins tag and (search trials) the margin metrics."""
    from mlflow.entities import Metric, RunTag

    decision = genotype_decision(result or {}, context)
    tags = [RunTag(NOTE_TAG, trial_note(context, trial_id, result, status, decision))]
    if decision:
        tags.append(RunTag(DECISION_TAG, decision))
    step = int((result or {}).get("epoch") or 0)
    metrics = [Metric(key, value, 0, step) for key, value in margin_metrics(result or {}).items()]
    client.log_batch(run_id, metrics=metrics, tags=tags)


def status_text(result: Mapping[str, Any] | None, planned: int, stopped: bool, error: str | None = None) -> str:
    epoch = (result or {}).get("epoch")
    if error is not None:
        return f"failed after {epoch or 0} of {planned} epochs: {error}"
    if stopped:
        return (f"stopped early by the scheduler (ASHA) after {epoch} of {planned} epochs: its scores are from "
                "fewer epochs than those of the trials that finished")
    return f"finished ({epoch} of {planned} epochs)"


def optuna_attributes(context: Mapping[str, Any], trial_id: str, result: Mapping[str, Any] | None,
                      stopped: bool) -> dict[str, Any]:
    """An Optuna trial's user attributes: its genotype (with margins), MLflow run id and link, Tune trial id,
    and whether a scheduler stopped it early."""
    from analysis.links import run_url, ui_base_url
    from trials.tracking import MLflowHook
    from trials.tune_entry import trial_run_name

    attrs: dict[str, Any] = {"tune_trial_id": trial_id, "stopped_early": stopped}
    genotype = genotype_decision(result or {}, context) or (result or {}).get("genotype")
    if genotype:
        attrs["genotype"] = str(genotype)
    if context.get("tracking_uri"):
        hook = MLflowHook(context["tracking_uri"], context["experiment_id"], context["parent_run_id"],
                          trial_run_name(context["phase"], trial_id), params={})
        run_id = hook.find_run_id()
        if run_id:
            attrs["mlflow_run_id"] = run_id
            attrs["mlflow_run_url"] = run_url(ui_base_url(context["tracking_uri"]), context["experiment_id"], run_id)
    return attrs


def log_launch_params(tracking_uri: str, run_id: str, plan: Mapping[str, Any]) -> None:
    """The launch's settings as the parent run's params (the plan.json artefact has them all, in full)."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from trials.tracking import BATCH_PARAMS, flatten_params

    settings = {key: plan[key] for key in ("study", "launch", "scale", "metric", "mode", "objectives", "seed",
                                           "synthetic", "data_dir") if key in plan}
    settings["phases"] = {phase["phase"]: {"kind": phase["kind"], "trials": phase["trials"], "config": phase["config"],
                                           "space": phase["space"], "grid": phase["grid"]} for phase in plan["phases"]}
    params = [Param(key, value) for key, value in flatten_params(settings).items()]
    client = MlflowClient(tracking_uri)
    for start in range(0, len(params), BATCH_PARAMS):
        client.log_batch(run_id, params=params[start:start + BATCH_PARAMS])


CHAMPION_KEYS = ("val/mAP", "val/mAP_ci_low", "val/mAP_ci_high", "val/num_valid_queries", "val/num_valid_ids",
                 "source/mAP", "source/rank1", "target/mAP", "target/rank1")


def launch_summary(rows: list[Mapping[str, Any]], metric: str, mode: str,
                   champion: Mapping[str, Any] | None) -> dict[str, float]:
    """The parent run's metrics: trials run / finished / stopped early / failed, the best value of the study's
    metric per phase (`best/PHASE/METRIC`), and the champion's validation and test scores (`champion/...`)."""
    summary = {"trials/run": float(len(rows))}
    for status, key in (("finished", "finished"), ("stopped early", "stopped_early"), ("failed", "failed")):
        summary[f"trials/{key}"] = float(sum(row["status"] == status for row in rows))
    for phase in dict.fromkeys(row["phase"] for row in rows):
        values = [float(row[metric]) for row in rows
                  if row["phase"] == phase and isinstance(row.get(metric), int | float)]
        if values:
            summary[f"best/{phase}/{metric}"] = max(values) if mode == "max" else min(values)
    chosen = next((row for row in rows if champion and f"{row['phase']}/{row['trial']}" == champion["trial"]), None)
    for key in CHAMPION_KEYS:
        if chosen is not None and isinstance(chosen.get(key), int | float):
            summary[f"champion/{key}"] = float(chosen[key])
    return summary


def log_launch_summary(tracking_uri: str, run_id: str, study, rows: list[Mapping[str, Any]], table,
                       champion: Mapping[str, Any] | None) -> None:
    """At the end of a launch, on its parent run: the summary metrics, the leaderboard as an MLflow table
    (`leaderboard.json`, shown by the UI's artefact view as a table) and a description ending with the result."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    summary = launch_summary(rows, study.metric, study.mode, champion)
    client.log_batch(run_id, metrics=[Metric(key, value, 0, 0) for key, value in summary.items()])
    if not table.empty:
        client.log_table(run_id, data=table.astype(object).where(table.notna(), None), artifact_file="leaderboard.json")
    counts = (f"{summary['trials/run']:.0f} trials: {summary['trials/finished']:.0f} finished, "
              f"{summary['trials/stopped_early']:.0f} stopped early, {summary['trials/failed']:.0f} failed")
    result = (f"**champion** `{champion['uri']}` (version {champion['version']}): {champion['reason']}"
              if champion else "no champion registered")
    client.set_tag(run_id, NOTE_TAG, f"{study.description}\n\n- {counts}\n- {result}\n- the leaderboard: "
                                     "artefact `leaderboard.json` (a table), `leaderboard.csv`")
