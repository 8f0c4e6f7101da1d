"""What a launch will run, resolved from its record: printed by --dry-run and at the start, logged to the
parent run as plan.json."""

from __future__ import annotations

import itertools
import json
import sys
from typing import Any

import study_cost
import study_data
import study_spec
from study_cluster import Cluster, ClusterError, idle_warning, impossible, layout

from trials.config import make_config
from trials.dataset_names import BUILTIN, source_names

# What the plan's `recipe` line shows of a phase's first trials: what the authors' commands set.
RECIPE_FIELDS = {
    "any": ("dataset", "target_dataset", "height", "width", "ids_per_batch", "instances", "epochs", "lr",
            "milestones", "weight_decay", "genotype", "val_fraction"),
    "retrain": ("sam_mode", "sam_ratio", "pretrained"),
    "search": ("supervision", "arch_lr", "arch_weight_decay", "arch_milestones"),
}
FROM_SCRATCH = "from scratch: not comparable to the paper's pretrained numbers"


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
        recipe = {} if phase.configs else first_trials(phase, launch["data_dir"])
        phases.append({"phase": phase.name, "kind": phase.kind, "trials": trials, "config": phase.config,
                       "recipe": recipe, "space": phase.space, "grid": phase.grid, "resources": phase.resources,
                       "max_concurrent": phase.max_concurrent, "early_stopping": phase.early_stopping,
                       "max_failures": phase.max_failures,
                       **(placement(study, phase, cluster) if cluster else {})})
    return {"study": study.name, "file": study.path, "description": study.description, "scale": study.scale,
            "metric": study.metric, "mode": study.mode, "objectives": objectives,
            "optimise_test_metric": study.optimise_test_metric, "from_scratch": from_scratch(study),
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


def warm_start_points(phase: study_spec.Phase, genotypes: list[str]) -> list[dict[str, Any]]:
    """Every grid combination once, with each searched value at the recipe's (clipped into its range)."""
    recipe = make_config(phase.kind, phase.config).to_dict()
    defaults = {}
    for key, spec in phase.space.items():
        (dist, bounds), = spec.items()
        value = recipe[key]
        if dist == "choice":
            defaults[key] = value if value in bounds else bounds[0]
        else:
            defaults[key] = type(bounds[0])(min(max(value, bounds[0]), bounds[1]))
    grid = study_spec.trial_values(phase, genotypes)
    return [{**defaults, **dict(zip(grid, combo, strict=True))} for combo in itertools.product(*grid.values())]


def first_trials(phase: study_spec.Phase, data_dir: str) -> dict[str, Any]:
    """The resolved config of the phase's first trials (one per grid value, searched values at the recipe's),
    restricted to RECIPE_FIELDS: a field on which they differ shows every value. The image width as trained
    (unset for own data, whose kind, person or vehicle, decides it)."""
    fields = RECIPE_FIELDS["any"] + RECIPE_FIELDS[phase.kind]
    rows = []
    for point in warm_start_points(phase, []):
        config = make_config(phase.kind, {**phase.config, **point, "data_dir": data_dir})
        row = {key: getattr(config, key) for key in fields}
        if config.width or all(part in BUILTIN for part in source_names(config.dataset)):
            row["height"], row["width"] = config.image_size  # own data: its kind is read when it trains
        if phase.genotypes:
            row["genotype"] = f"from {describe_genotypes(phase.genotypes)}"
        rows.append(row)
    recipe = {}
    for key in fields:
        values = [row[key] for row in rows]
        recipe[key] = values[0] if all(v == values[0] for v in values) else values
    return recipe


def from_scratch(study: study_spec.Study) -> str | None:
    """At full scale, a study the authors run from their pretrained weights, launched without `pretrained=`:
    the sentence the plan, the launch's first lines, the parent run's tag and the report's final table carry."""
    name = study.authors_pretrained
    if study.scale != "full" or not name or all(phase.config.get("pretrained") for phase in study.phases
                                                  if phase.kind == "retrain"):
        return None
    return (f"{FROM_SCRATCH}: the authors start these runs from their ImageNet-pretrained {name} (train.py "
            f"--pretrained); add --set pretrained=/path/to/{name}")


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


def handover_lines(launch: dict[str, Any], phase: study_spec.Phase) -> list[str]:
    """What a phase took from an earlier one, once chosen (printed at its start and by `--dry-run` of a resumed
    launch): each genotype or configuration with the source trial's validation score, interval and size,
    and whether the ranking of the top two was decided (analysis.uncertainty.choice)."""
    from analysis.uncertainty import candidate, choice, choice_text, score_text, size_text

    record = launch["phases"].get(phase.name, {})
    spec = phase.configs or phase.genotypes
    if not spec or not spec.get("from") or not (record.get("genotypes") or record.get("configs")):
        return []
    study = study_of(launch)
    rows = [r for r in launch["phases"].get(spec["from"], {}).get("rows", []) if r["status"] != "failed"]
    lines = [f"phase {phase.name} takes from phase {spec['from']} (chosen by {study.metric}, {study.mode}):"]
    if phase.configs:
        chosen = [(f"configuration {i + 1}", [r for r in rows if r.get("config") == config])
                  for i, config in enumerate(record["configs"])]
    else:
        chosen = [(genotype, [r for r in rows if r["genotype"] == genotype]) for genotype in record["genotypes"]]
    for name, source in chosen:
        if not source:  # a random or published genotype: not chosen by a score
            lines.append(f"  {name} ({record.get('groups', {}).get(name, 'not from a trial')})")
            continue
        row = max(source, key=lambda r: _value(r, study.metric, study.mode))
        item = candidate(row["trial"], row, study.metric)
        shown = row.get("decision") or name
        lines.append(f"  {shown} <- {row['trial']} ({row['status']}): {study.metric} {score_text(item)} on "
                     f"{size_text(item)}")
    ranked = choice([candidate(row["trial"], row, study.metric) for row in rows], study.mode)
    lines.append(f"  ranking of phase {spec['from']}: {choice_text(ranked, study.metric)}")
    return lines


def _value(row: dict[str, Any], metric: str, mode: str) -> float:
    value = row.get(metric)
    if not isinstance(value, int | float):
        return float("-inf")
    return float(value) if mode == "max" else -float(value)


def print_plan(launch: dict[str, Any], cluster: Cluster | None = None) -> None:
    p = plan(launch, cluster)
    study = study_of(launch)
    print(f"study {p['study']} ({p['file']}), scale {p['scale']}: {p['description']}")
    if p["from_scratch"]:
        print(f"** {p['from_scratch']} **")
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
        if phase["recipe"]:
            print(f"  recipe: {json.dumps(phase['recipe'])}")
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
        for line in handover_lines(launch, next(x for x in study.phases if x.name == phase["phase"])):
            print(f"  {line}")
    print(f"tracking: {p['tracking_uri']} (experiment {p['study']}); Optuna: {p['optuna_storage']}")
    print(f"Tune results and checkpoints: {p['storage_path']}")


def print_layout(spot: dict[str, Any], cost: dict[str, Any]) -> None:
    per_gpu = f", {spot['trials_per_gpu']:g} per GPU" if spot["trials_per_gpu"] else ""
    print(f"  cluster: {spot['trials_per_node']} trial(s) per {spot['node_type']} node{per_gpu} "
          f"(limited by {spot['limit']}); idle per node: {spot['idle_cpus_per_node']:g} CPU, "
          f"{spot['idle_gpus_per_node']:g} GPU; {spot['concurrent']} of {spot['trials']} trial(s) at once on "
          f"{spot['nodes']} node(s)")
    print(f"  cost: {study_cost.describe(cost)}")
