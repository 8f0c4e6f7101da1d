"""The function a study's Ray Tune trials run on the workers: one search or retrain trial, logged to MLflow.

The driver (platform/launch.py) passes `context`, a plain dict (nothing from platform/, which workers cannot
import): the phase, the MLflow store, experiment and parent run, and the groups of genotypes. The MLflow
run is named after the phase and Tune's trial id, which survive retries and `--resume`, so a restarted trial
keeps logging into its own run instead of opening a second one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trials.config import ConfigError, make_config
from trials.runtime.device import check_gpu_share
from trials.runtime.failures import TrialFailed, failure_kind
from trials.runtime.session import TuneSession
from trials.tracking import MLflowHook


def run_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    import ray
    import torch
    from ray import tune

    kind = context["kind"]
    try:
        cfg = make_config(kind, config)
    except ConfigError as error:  # the same values fail the same way on every attempt
        raise TrialFailed("bad configuration", str(error)) from error
    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus = assigned.get("CPU") or 1
    torch.set_num_threads(max(1, int(cpus)))  # parallel trials on one node must not fight over cores
    gpus = float(assigned.get("GPU") or 0)
    node = ray.get_runtime_context().get_node_id()

    hooks = []
    if context.get("tracking_uri"):
        trial_id = tune.get_context().get_trial_id()
        tags = {"msinet.role": "trial", "msinet.phase": context["phase"], "msinet.kind": kind,
                "msinet.launch": context["launch"], "msinet.space": ",".join(context.get("space", ())),
                "msinet.group": trial_group(cfg.to_dict(), context), "env.ray_node": node}
        decision = context.get("decisions", {}).get(str(cfg.genotype))
        if decision:  # a retrain of a searched genotype: how decided the search left each slot
            tags["msinet.genotype_margins"] = decision
        tags.update(final_tags(config, context))
        if 0 < gpus < 1 and torch.cuda.is_available() and cfg.device != "cpu":
            # the trial shares a real GPU: system/gpu_* figures are then the whole device's, not this trial's
            tags.update({"msinet.gpu_shared": "true", "msinet.gpu_share": f"{gpus:g}"})
        hooks.append(MLflowHook(context["tracking_uri"], context["experiment_id"], context["parent_run_id"],
                                trial_run_name(context["phase"], trial_id), cfg.to_dict(), tags))
        hooks[0].record_start(node)  # a retry (node lost, --resume) counts, with the node it moved to
    check_gpu_share(gpus, cfg.device)
    if cfg.compile:  # a reused process (reuse_actors) would carry the last trial's graphs towards the recompile limit
        torch._dynamo.reset()
    if kind == "search":
        from trials.search import run_search as run
    else:
        from trials.retrain import run_retrain as run
    marker = Path(tune.get_context().get_trial_dir()) / FAILED
    earlier = marker.read_text() if marker.exists() else (hooks[0].failure() if hooks else None)
    if earlier:  # `--resume` restarts errored trials; one whose failure repeats fails at once, untrained
        repeats, _, message = earlier.partition(": ")
        raise TrialFailed(repeats, f"{message} [an earlier attempt of this trial failed so; not retried]")
    try:
        run(cfg, TuneSession(hooks))
    except Exception as error:
        repeats = failure_kind(error)
        if repeats is None:  # a lost resource, a server that did not answer: Tune's retries are for these
            raise
        failed = error if isinstance(error, TrialFailed) else TrialFailed(repeats, str(error))
        # With remote storage (s3://) the trial folder is the driver's staging folder: on another node it may
        # not exist; the MLflow tag below is what a retry elsewhere reads.
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(failed))
        if hooks:
            hooks[0].mark_failure(str(failed))
        if failed is error:
            raise
        raise failed from error  # the whole traceback stays in the trial's error.txt, off the terminal
    finally:  # also after a scheduler's stop (a SystemExit from the report), before the process's next trial
        for hook in hooks:
            hook.stop_watching()


FAILED = "failed.txt"  # in the trial's folder: the failure that repeats, for a restarted attempt


def trial_run_name(phase: str, trial_id: str) -> str:
    """The MLflow run name (and `msinet.trial` tag) of one Tune trial: the driver finds runs by it too."""
    return f"{phase}/{trial_id}"


def final_tags(config: dict[str, Any], context: dict[str, Any]) -> dict[str, str]:
    """A final trial's lineage: the earlier trial whose configuration it retrains and that trial's score (what
    the champion is chosen by: a final has no hold-out), and for a grouped final its side of the comparison."""
    for entry in context.get("finals", ()):
        if all(config.get(key) == value for key, value in entry["match"].items()):
            tags = {"msinet.selected_from": entry["trial"], "msinet.selected_on": entry["metric"],
                    "msinet.selected_score": str(entry["score"])}
            if entry["group_by"]:
                tags.update({"msinet.final_group_by": entry["group_by"], "msinet.final_group": entry["side"]})
            return tags
    return {}


def trial_group(config: dict[str, Any], context: dict[str, Any]) -> str:
    """Which comparison a trial belongs to: search trials by supervision, retrains by where the genotype came from."""
    if context.get("final"):
        return "final"  # the paper-comparable retrain of a chosen configuration, on every training id
    if context["kind"] == "search":
        return str(config["supervision"])
    genotype = str(config["genotype"])
    if genotype in context.get("groups", {}):
        return context["groups"][genotype]
    import spaces

    if genotype in spaces.NAMED_GENOTYPES:
        return "published"
    return "random" if genotype.startswith("random") else "custom"
