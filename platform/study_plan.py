"""What a launch will run, resolved from its record: printed by --dry-run and at the start, logged to the
parent run as plan.json."""

from __future__ import annotations

import json
import sys
from typing import Any

import study_cost
import study_data
import study_spec
from study_cluster import Cluster, ClusterError, idle_warning, impossible, layout

from trials.config import make_config


def study_of(launch: dict[str, Any]) -> study_spec.Study:
    """The resolved study a launch record holds (as saved, so that --resume runs the same plan)."""
    phases = [study_spec.Phase(**phase) for phase in launch["study"]["phases"]]
    return study_spec.Study(**{**launch["study"], "phases": phases})


def plan(launch: dict[str, Any], cluster: Cluster | None = None) -> dict[str, Any]:
    """What will run, where results go, and (given the cluster) where it runs and what it costs: printed by
    --dry-run and at the start of a launch, logged to the parent run."""
    study = study_of(launch)
    phases = []
    objectives = " against ".join(f"{m} ({mode})" for m, mode in study_spec.objectives(study))
    for phase in study.phases:
        trials = f"{study_spec.sample_count(phase, [])} trials"
        if phase.genotypes:
            trials = f"{describe_genotypes(phase.genotypes, objectives)}, at least {phase.num_samples} trial(s)"
        if phase.configs:
            spec = phase.configs
            chosen = (f"the configurations on the Pareto front of phase {spec['from']} ({objectives})" if spec["pareto"]
                      else f"the best {spec['top_k']} configuration(s) of phase {spec['from']} by {study.metric}"
                      f"{' per ' + spec['group_by'] if spec['group_by'] else ''}")
            trials = (f"FINAL: {chosen}{budget_text(spec)}, retrained on every training id (no hold-out) and tested "
                      "once: the paper-comparable numbers")
        phases.append({"phase": phase.name, "kind": phase.kind, "trials": trials, "config": phase.config,
                       "space": phase.space, "grid": phase.grid, "resources": phase.resources,
                       "max_concurrent": phase.max_concurrent, "early_stopping": phase.early_stopping,
                       "max_failures": phase.max_failures,
                       **(placement(study, phase, cluster) if cluster else {})})
    return {"study": study.name, "file": study.path, "description": study.description, "scale": study.scale,
            "metric": study.metric, "mode": study.mode, "objectives": objectives,
            "optimise_test_metric": study.optimise_test_metric,
            "launch": launch["launch"], "seed": launch["seed"], "data_dir": launch["data_dir"],
            "synthetic": launch["synthetic"], "datasets": study_data.datasets(study),
            "tracking_uri": launch["tracking_uri"], "optuna_storage": launch["optuna_storage"],
            "storage_path": launch["storage_path"], "phases": phases,
            "cluster": cluster.to_dict() if cluster else None}


def placement(study: study_spec.Study, phase: study_spec.Phase, cluster: Cluster) -> dict[str, Any]:
    """Where the phase's trials run on the cluster and what they cost; raises ClusterError when no node can
    hold a trial of an autoscaling cluster (a fixed one may still be given nodes: a warning)."""
    trials = expected_trials(study, phase)
    spot = layout(phase.resources, trials, phase.max_concurrent, cluster)
    if spot is None:
        message = impossible(phase.name, phase.resources, cluster)
        if cluster.complete:
            raise ClusterError(message)
        return {"layout": None, "warnings": [message]}
    warning = idle_warning(phase.name, phase.resources, spot)
    cost = study_cost.estimate(make_config(phase.kind, phase.config), trials, spot.concurrent,
                               phase.resources["gpu"], spot.node.gpu_model, study_cost.measured_rates())
    return {"layout": spot.to_dict(), "cost": cost, "warnings": [warning] if warning else []}


def expected_trials(study: study_spec.Study, phase: study_spec.Phase) -> int:
    """The phase's trials as far as the plan can tell (a Pareto selection: at most the source phase's)."""
    def picked(spec: dict[str, Any]) -> int:
        source = study.phase(spec["from"])
        if spec.get("pareto"):
            return expected_trials(study, source)
        groups = len(source.grid.get(spec["group_by"], [None])) if spec.get("group_by") else 1
        return spec["top_k"] * groups
    if phase.configs:
        return picked(phase.configs)
    genotypes = 0
    if phase.genotypes:
        spec = phase.genotypes
        genotypes = (picked(spec) if spec["from"] else 0) + spec["random"] + len(spec["published"])
    return study_spec.sample_count(phase, [f"g{i}" for i in range(genotypes)])


def budget_text(spec: dict[str, Any]) -> str:
    limits = ", ".join(f"{metric} <= {limit:g}" for metric, limit in spec.get("budget", {}).items())
    return f" within the budget {limits}" if limits else ""


def describe_genotypes(spec: dict[str, Any], objectives: str = "") -> str:
    best = (f"the distinct genotypes on the Pareto front of phase {spec['from']} ({objectives})" if spec.get("pareto")
            else f"top {spec['top_k']} distinct genotypes of phase {spec['from']}"
            f"{' per ' + spec['group_by'] if spec['group_by'] else ''}")
    parts = [best + budget_text(spec) if spec["from"] else "",
             f"{spec['random']} random genotypes" if spec["random"] else "",
             f"published {', '.join(spec['published'])}" if spec["published"] else ""]
    return " + ".join(p for p in parts if p)


def print_plan(launch: dict[str, Any], cluster: Cluster | None = None) -> None:
    p = plan(launch, cluster)
    print(f"study {p['study']} ({p['file']}), scale {p['scale']}: {p['description']}")
    marked = "  ** a TEST metric is optimised (optimise_test_metric: true) **" if p["optimise_test_metric"] else ""
    if " against " in p["objectives"]:
        print(f"optimises {p['objectives']}: Optuna's multi-objective TPE proposes, the Pareto set is kept; "
              f"early stopping and the leaderboard use {p['metric']}{marked}")
    else:
        print(f"optimises {p['metric']} ({p['mode']}){marked}")
    if cluster:
        print(f"cluster: {cluster.source}: " + "; ".join(
            f"{t.describe()}{' head' if t.head else ''}, up to {t.max_nodes}" for t in cluster.node_types))
    data = "synthetic stand-ins generated in" if p["synthetic"] else "read from"
    print(f"data: {', '.join(f'{k} ({v})' for k, v in p['datasets'].items())}, {data} {p['data_dir']}")
    for phase in p["phases"]:
        print(f"phase {phase['phase']} [{phase['kind']}]: {phase['trials']}, "
              f"{phase['resources']['cpu']:g} CPU + {phase['resources']['gpu']:g} GPU per trial"
              f"{', at most ' + str(phase['max_concurrent']) + ' at once' if phase['max_concurrent'] else ''}")
        print(f"  fixed:  {json.dumps(phase['config'])}")
        if phase["space"]:
            print(f"  Optuna (TPE, seed {p['seed']}): {json.dumps(phase['space'])}")
        if phase["grid"]:
            print(f"  every one of: {json.dumps(phase['grid'])}")
        stopping = phase["early_stopping"]
        print(f"  early stopping: {'ASHA on ' + p['metric'] + ' ' + json.dumps(stopping) if stopping else 'none'}; "
              f"retries from the last checkpoint: {phase['max_failures']}")
        if phase.get("layout"):
            print_layout(phase["layout"], phase["cost"])
        for warning in phase.get("warnings", ()):
            print(f"warning: {warning}", file=sys.stderr)
    print(f"tracking: {p['tracking_uri']} (experiment {p['study']}); Optuna: {p['optuna_storage']}")
    print(f"Tune results and checkpoints: {p['storage_path']}")


def print_layout(spot: dict[str, Any], cost: dict[str, Any]) -> None:
    per_gpu = f", {spot['trials_per_gpu']:g} per GPU" if spot["trials_per_gpu"] else ""
    print(f"  cluster: {spot['trials_per_node']} trial(s) per {spot['node_type']} node{per_gpu} "
          f"(limited by {spot['limit']}); idle per node: {spot['idle_cpus_per_node']:g} CPU, "
          f"{spot['idle_gpus_per_node']:g} GPU; {spot['concurrent']} of {spot['trials']} trial(s) at once on "
          f"{spot['nodes']} node(s)")
    print(f"  cost: {study_cost.describe(cost)}")
