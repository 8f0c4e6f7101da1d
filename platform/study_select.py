"""What a phase takes from an earlier one: the genotypes a retrain phase trains, the configurations a final
phase retrains. Top-k by the study's first objective, or (`pareto: true`) every trial that no other beats
on all of the study's objectives; `budget` first drops the trials over a limit (e.g. latency/ms <= 30)."""

from __future__ import annotations

from typing import Any

Objectives = list[tuple[str, str]] | list[list[str]]


def pareto_rows(rows: list[dict[str, Any]], objectives: Objectives) -> list[dict[str, Any]]:
    """The rows no other row dominates: no worse on every objective and better on one."""
    from analysis.tables import non_dominated  # numpy and pandas: only once a phase selects

    values = [[float(row[metric]) * (1 if mode == "max" else -1) for metric, mode in objectives] for row in rows]
    return [row for row, kept in zip(rows, non_dominated(values), strict=True) if kept]


def candidates(spec: dict[str, Any], earlier: list[dict[str, Any]], objectives: Objectives,
               usable) -> list[dict[str, Any]]:
    """The source phase's usable rows within the budget, the Pareto set when asked, best first."""
    metric, mode = objectives[0]
    needed = [m for m, _ in objectives] if spec.get("pareto") else [metric]
    rows = [r for r in earlier if r["phase"] == spec["from"] and usable(r)
            and all(isinstance(r.get(m), int | float) for m in [*needed, *spec.get("budget", {})])
            and all(r[m] <= limit for m, limit in spec.get("budget", {}).items())]
    if spec.get("pareto"):
        rows = pareto_rows(rows, objectives)
    rows.sort(key=lambda r: r[metric], reverse=mode == "max")
    if not rows:
        within = f" within the budget {spec['budget']}" if spec.get("budget") else ""
        raise RuntimeError(f"phase {spec['from']!r} has no usable trial with {' and '.join(needed)}{within}")
    return rows


def select_configs(spec: dict[str, Any], earlier: list[dict[str, Any]],
                   objectives: Objectives) -> list[dict[str, Any]]:
    """The source rows whose configurations a final phase retrains, best first.

    Among the source phase's trials that ran all their epochs: the top-k or the Pareto set, each config once.
    With `group_by` the top-k of every value of that config key (or of the trial's `group`, where its genotype
    came from), so that a study comparing SAM modes or origins keeps every side of the comparison.
    """
    ranked = candidates(spec, earlier, objectives, lambda r: r["status"] == "finished" and r.get("config"))
    chosen: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    for row in ranked:
        group = comparison_group(spec["group_by"], row)
        if (spec.get("pareto") or taken.get(group, 0) < spec["top_k"]) and all(row["config"] != c["config"]
                                                                                for c in chosen):
            chosen.append(row)
            taken[group] = taken.get(group, 0) + 1
    return chosen


def comparison_group(group_by: str | None, row: dict[str, Any]) -> str:
    """The side of a comparison a trial's row is on: its value of `group_by` (a config key, or `group`)."""
    if not group_by:
        return ""
    return str(row.get("group") if group_by == "group" else row["config"].get(group_by))


def final_entries(spec: dict[str, Any], chosen: list[dict[str, Any]], metric: str,
                  fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """What each final trial is told about the configuration it retrains, to tag its run with: the keys it
    recognises itself by (the config less what the final phase sets), the side of the comparison, the source
    trial (its MLflow run name, PHASE/TRIAL_ID) and its score on the metric it was chosen by."""
    return [{"match": {k: v for k, v in row["config"].items() if k not in fixed and k != "data_dir"},
             "group_by": spec["group_by"], "side": comparison_group(spec["group_by"], row) or None,
             "trial": f"{row['phase']}/{row['trial']}", "metric": metric, "score": row.get(metric)} for row in chosen]


def uncovered_groups(spec: dict[str, Any], earlier: list[dict[str, Any]], chosen: list[dict[str, Any]]) -> list[str]:
    """The sides of a grouped final's comparison that none of the chosen rows is on (every trial of that side
    failed or stopped early): the launch says so instead of printing a table that lacks them."""
    if not spec["group_by"] or spec.get("pareto"):
        return []
    rows = [r for r in earlier if r["phase"] == spec["from"] and r.get("config")]
    covered = {comparison_group(spec["group_by"], r) for r in chosen}
    return sorted({comparison_group(spec["group_by"], r) for r in rows} - covered)


def select_genotypes(spec: dict[str, Any], earlier: list[dict[str, Any]], objectives: Objectives,
                     seed: int) -> tuple[list[str], dict[str, str]]:
    """The genotypes a retrain phase trains, and the group of each (for the comparisons in reports).

    Top-k *distinct* genotypes of the source phase by the first objective (per `group_by` value when given)
    or its Pareto set, then `random` uniformly drawn ones, then the `published` ones.
    """
    import spaces

    groups: dict[str, str] = {}
    if spec["from"]:
        ranked = candidates(spec, earlier, objectives, lambda r: r["status"] != "failed" and r["genotype"])
        taken: dict[str, int] = {}
        for row in ranked:
            group = str(row.get(spec["group_by"] or "group", row["group"]))
            if row["genotype"] in groups:
                continue
            if not spec.get("pareto"):
                if taken.get(group, 0) >= spec["top_k"]:
                    continue
                if spec["group_by"] is None and sum(taken.values()) >= spec["top_k"]:
                    break
            groups[row["genotype"]] = group
            taken[group] = taken.get(group, 0) + 1
    for i in range(spec["random"]):
        groups.setdefault(str(spaces.random_genotype(seed + 1000 + i)), "random")
    for name in spec["published"]:
        groups.setdefault(str(spaces.NAMED_GENOTYPES[name]), "published")
    return list(groups), groups
