"""The function a study's Ray Tune trials run on the workers: one search or retrain trial, logged to MLflow.

The driver (platform/launch.py) passes `context`, a plain dict (nothing from platform/, which workers cannot
import): the phase, the MLflow store, experiment and parent run, and the groups of genotypes. The MLflow
run is named after the phase and Tune's trial id, which survive retries and `--resume`, so a restarted trial
keeps logging into its own run instead of opening a second one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trials.config import make_config
from trials.runtime.device import check_gpu_share
from trials.runtime.divergence import NonFiniteLossError
from trials.runtime.session import TuneSession
from trials.tracking import MLflowHook


def run_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    import ray
    import torch
    from ray import tune

    kind = context["kind"]
    cfg = make_config(kind, config)
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
        if 0 < gpus < 1 and torch.cuda.is_available() and cfg.device != "cpu":
            # the trial shares a real GPU: system/gpu_* figures are then the whole device's, not this trial's
            tags.update({"msinet.gpu_shared": "true", "msinet.gpu_share": f"{gpus:g}"})
        hooks.append(MLflowHook(context["tracking_uri"], context["experiment_id"], context["parent_run_id"],
                                trial_run_name(context["phase"], trial_id), cfg.to_dict(), tags))
        hooks[0].record_start(node)  # a retry (node lost, --resume) counts, with the node it moved to
    check_gpu_share(gpus, cfg.device)
    if kind == "search":
        from trials.search import run_search as run
    else:
        from trials.retrain import run_retrain as run
    marker = Path(tune.get_context().get_trial_dir()) / DIVERGED
    earlier = marker.read_text() if marker.exists() else (hooks[0].diverged() if hooks else None)
    if earlier:  # the same seed diverges the same way again: fail at once instead of re-training to it
        raise NonFiniteLossError(f"{earlier} [an earlier attempt of this trial diverged; not retried]")
    try:
        run(cfg, TuneSession(hooks))
    except NonFiniteLossError as error:
        marker.write_text(str(error))
        if hooks:
            hooks[0].mark_diverged(str(error))
        raise


DIVERGED = "diverged.txt"


def trial_run_name(phase: str, trial_id: str) -> str:
    """The MLflow run name (and `msinet.trial` tag) of one Tune trial: the driver finds runs by it too."""
    return f"{phase}/{trial_id}"


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
