"""Tables a study is judged by, from the runs frame of `analysis.runs`: leaderboard, the paper's comparisons,
accuracy against cost. DataFrames in, DataFrames out; no plotting here (that is `analysis.figures`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.runs import space_names
from analysis.uncertainty import interval_keys

SCORE_METRICS = ("source/mAP", "source/rank1", "source/rank5", "source/mINP",
                 "target/mAP", "target/rank1", "target/rank5", "target/mINP", "val/mAP")
GROUP_ORDER = ("tcm", "classification", "random", "published", "searched", "final")
SAM_ORDER = ("none", "pos", "neg", "pos_neg")
ORIGIN_ORDER = ("published", "searched")
PUBLISHED_GENOTYPE = "msmt"
MODES = ("max", "min")
LEADERBOARD_COLUMNS = ("rank", "trial", "phase", "kind", "group", "genotype", "genotype_margins", "params", "macs",
                       "epochs_done", "wall_seconds", "status", "stopped_early", "error", "launch", "run_id")
# One definition of a network's size everywhere (leaderboards, cost tables, figures): its parameters without
# the classifier, whose size follows the number of training identities, not the architecture (the 2.3 M of
# the MSINet paper). `metrics.params` (with the classifier) stays in MLflow.
PARAMS_METRIC = "params_no_classifier"


def leaderboard(runs: pd.DataFrame, metric: str = "val/mAP", mode: str = "max") -> pd.DataFrame:
    """One row per trial, best first by the study's metric (its latest value); trials a scheduler stopped early
    after those that ran every epoch (their value is from fewer epochs: not ranked among the others), trials
    without the metric last.

    Columns: rank (empty for trials stopped early or without the metric), trial, phase, kind, group, genotype
    (the tag, or the `genotype` param for a trial that died before reporting one), genotype_margins (the
    genotype with its undecided slots marked `?` and its decision margins, for searched genotypes), the outer
    hyperparameters (every name in the trials' `msinet.space` tags, numbers where they parse), the source /
    target / val scores, the metric when it is not one of them, its 95 % interval (`<metric>_ci_low`,
    `_ci_high`) and validation size (`val_queries`, `val_ids`) when logged, params (without the classifier:
    `PARAMS_METRIC`), macs, epochs_done, wall_seconds, status, stopped_early, error, launch, run_id.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    table = pd.DataFrame({"trial": runs["trial"], "phase": runs["phase"], "kind": runs["kind"], "group": runs["group"],
                          "genotype": runs["genotype"].fillna(runs_column(runs, "params.genotype")),
                          "genotype_margins": runs_column(runs, "tags.msinet.genotype_margins")})
    for name in outer_hyperparameters(runs):
        column = f"param.{name}" if name in LEADERBOARD_COLUMNS + SCORE_METRICS else name
        searched = runs["space"].map(lambda space, name=name: name in space_names(space)).to_numpy(dtype=bool)
        # a value the trial's optimiser did not search (a fixed recipe value) is left blank
        table[column] = _numbers_if_possible(runs_column(runs, f"params.{name}").where(searched))
    scores = list(SCORE_METRICS) + ([metric] if metric not in SCORE_METRICS else [])
    for name in scores:
        table[name] = runs_column(runs, f"metrics.{name}").astype(float)
    for name in (*interval_keys(metric), "val_queries", "val_ids"):
        source = {"val_queries": "val/num_valid_queries", "val_ids": "val/num_valid_ids"}.get(name, name)
        table[name] = runs_column(runs, f"metrics.{source}").astype(float)
    table["params"] = runs_column(runs, f"metrics.{PARAMS_METRIC}").astype(float)
    table["macs"] = runs_column(runs, "metrics.macs").astype(float)
    table["epochs_done"] = runs_column(runs, "metrics.epoch").astype(float)
    for name in ("wall_seconds", "status", "stopped_early", "error", "launch", "run_id"):
        table[name] = runs[name]
    unranked = table["stopped_early"].astype(bool) | table[metric].isna()
    table = table.assign(_unranked=unranked).sort_values(["_unranked", metric, "trial"],
                                                         ascending=[True, mode == "min", True], na_position="last",
                                                         kind="stable", ignore_index=True)
    rank = pd.array(np.arange(1, len(table) + 1), dtype="Int64")
    rank[table.pop("_unranked").to_numpy()] = pd.NA
    table.insert(0, "rank", rank)
    return table


def outer_hyperparameters(runs: pd.DataFrame) -> list[str]:
    """The params any trial's optimiser searched (`msinet.space` tags), in first-seen order."""
    names: dict[str, None] = {}
    for space in runs["space"]:
        names.update(dict.fromkeys(space_names(space)))
    return list(names)


def status_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """How many trials are in each state (RUNNING, FINISHED, FAILED, KILLED), and how many stopped early."""
    counts = runs.groupby("status").size().rename("trials").reset_index()
    early = runs[runs["stopped_early"].astype(bool)].groupby("status").size().rename("stopped_early")
    counts["stopped_early"] = counts["status"].map(early).fillna(0).astype(int)
    return counts


def metric_by(runs: pd.DataFrame, metric: str, by: str, kind: str | None = "retrain",
              order: Sequence[str] = ()) -> pd.DataFrame:
    """Long form for a distribution: trial, <by> (its short name), <metric>, genotype, run_id.

    Finished trials of `kind` with both a value of `by` (a runs column, e.g. `group` or `params.sam_mode`)
    and of the metric; categories in `order` first, the others after them by name.
    """
    short = by.split(".", 1)[1] if by.startswith(("params.", "tags.", "metrics.")) else by
    selected = runs[runs["status"] == "FINISHED"]
    if kind is not None:
        selected = selected[selected["kind"] == kind]
    table = pd.DataFrame({"trial": selected["trial"], short: runs_column(selected, by),
                          metric: runs_column(selected, f"metrics.{metric}").astype(float),
                          "genotype": selected["genotype"], "run_id": selected["run_id"]})
    table = table.dropna(subset=[short, metric])
    rank = {name: i for i, name in enumerate(order)}
    keys = [(rank.get(value, len(rank)), str(value)) for value in table[short]]
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def summarise(long: pd.DataFrame, by: str | list[str], value: str) -> pd.DataFrame:
    """Per category of `by` (a column or several): n, mean, std, min, median, max of `value` and the best
    trial, categories in first-seen order."""
    grouped = long.groupby(by, sort=False, dropna=False)[value]
    table = grouped.agg(["count", "mean", "std", "min", "median", "max"]).rename(columns={"count": "n"})
    table["best_trial"] = long.loc[grouped.idxmax(), "trial"].to_numpy() if not long.empty else []
    return table.reset_index()


def supervision_comparison(runs: pd.DataFrame, metric: str = "source/mAP") -> pd.DataFrame:
    """Retrained accuracy per `msinet.group` (TCM vs classification-searched vs random genotypes, ...)."""
    return metric_by(runs, metric, "group", order=GROUP_ORDER)


def sam_comparison(runs: pd.DataFrame, metric: str = "target/mAP") -> pd.DataFrame:
    """Cross-domain accuracy per SAM mode (param `sam_mode`); in-domain runs have no target metric. The final
    runs (trained on more ids) are compared in the report's paper-comparable section, not pooled here."""
    return metric_by(runs[runs["group"] != "final"], metric, "params.sam_mode", order=SAM_ORDER)


def genotype_origin(runs: pd.DataFrame) -> pd.Series:
    """published (group `published` or param genotype `msmt`), random (group or `random:SEED`) or searched."""
    spec = runs_column(runs, "params.genotype").fillna("").astype(str).str.strip().str.lower()
    group = runs["group"].fillna("").astype(str)
    origin = np.where((group == "published") | (spec == PUBLISHED_GENOTYPE), "published",
                      np.where((group == "random") | spec.str.startswith("random"), "random", "searched"))
    return pd.Series(origin, index=runs.index, name="origin")


def published_comparison(runs: pd.DataFrame, metrics: Iterable[str] = ("source/mAP", "target/mAP")) -> pd.DataFrame:
    """Finished retrains of searched and of the published genotype: trial, phase, origin, genotype, the metrics,
    run_id (compare within a phase: a cross-domain retrain is not an in-domain one).

    Random genotypes are left out (they are the supervision comparison's baseline). Rows need at least one of
    the metrics.
    """
    metrics = list(metrics)
    selected = runs[(runs["status"] == "FINISHED") & (runs["kind"] == "retrain")]
    table = pd.DataFrame({"trial": selected["trial"], "phase": selected["phase"], "origin": genotype_origin(selected),
                          "genotype": selected["genotype"]})
    for name in metrics:
        table[name] = runs_column(selected, f"metrics.{name}").astype(float)
    table["run_id"] = selected["run_id"]
    table = table[table["origin"].isin(ORIGIN_ORDER)].dropna(subset=metrics, how="all")
    phase = table["phase"].fillna("")
    first_seen = {name: i for i, name in enumerate(dict.fromkeys(phase))}
    keys = [(first_seen[name], ORIGIN_ORDER.index(origin)) for name, origin in zip(phase, table["origin"], strict=True)]
    return table.iloc[sorted(range(len(table)), key=keys.__getitem__)].reset_index(drop=True)


def pareto_front(df: pd.DataFrame, x: str, y: str, minimise_x: bool = True, maximise_y: bool = True) -> pd.Series:
    """Mask of the rows no other row dominates (x no worse and y no worse, one of them better).

    By default low x (cost) and high y (accuracy) are better. Rows missing x or y are never on the front.
    """
    values = np.column_stack([df[x].to_numpy(dtype=float) * (-1 if minimise_x else 1),
                              df[y].to_numpy(dtype=float) * (1 if maximise_y else -1)])
    return pd.Series(non_dominated(values), index=df.index, name="pareto")


def non_dominated(values: np.ndarray) -> np.ndarray:
    """Mask of the rows of `values` (one column per objective, larger is better) that no other row beats:
    no worse in every column and better in one. Rows with a NaN are never on the front."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.zeros(len(values), dtype=bool)
    valid = ~np.isnan(values).any(axis=1)
    mask = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(valid):
        no_worse = valid & (values >= values[i]).all(axis=1)
        mask[i] = not np.any(no_worse & (values > values[i]).any(axis=1))
    return mask


LATENCY_METRIC = "latency/b1_ms_per_image"
THROUGHPUT_METRIC = "latency/b64_images_per_second"
LATENCY_TAGS = ("tags.msinet.latency_measured_at", "tags.msinet.latency_measured_on")


def comparable_latency(runs: pd.DataFrame) -> pd.Series:
    """Which runs' measured latencies can be compared with each other: measured on a device no other trial
    shared (tag `msinet.latency_shared` not "yes: ..."), at the input size and on the device (tags
    `msinet.latency_measured_at`, `msinet.latency_measured_on`) that most such runs share. The same genotype
    measured 13.7 ms in one launch and 67.5 ms in the next on a shared machine; runs without the tags (older
    ones) count as one group."""
    measured = pd.to_numeric(runs_column(runs, f"metrics.{LATENCY_METRIC}"), errors="coerce").notna()
    shared = runs_column(runs, "tags.msinet.latency_shared").fillna("").astype(str).str.startswith("yes")
    where = pd.Series(list(zip(*(runs_column(runs, tag).fillna("").astype(str) for tag in LATENCY_TAGS),
                               strict=True)), index=runs.index, dtype=object)
    candidates = measured & ~shared
    if not candidates.any():
        return candidates
    common = where[candidates].value_counts().index[0]
    return candidates & (where == common)


def cost_table(runs: pd.DataFrame, metric: str = "source/mAP") -> pd.DataFrame:
    """Finished retrains with the metric and a cost: trial, genotype, params, macs, the measured latency
    (`latency_ms`: ms per image at batch 1; `images_per_second` at batch 64, both on the trial's device),
    <metric>, and whether each lies on the Pareto front of metric against params (`pareto_params`), MACs
    (`pareto_macs`) and latency (`pareto_latency`, among the `latency_comparable` measurements only, see
    `comparable_latency`; False throughout when no run measured it)."""
    selected = runs[(runs["status"] == "FINISHED") & (runs["kind"] == "retrain")]
    table = pd.DataFrame({"trial": selected["trial"], "genotype": selected["genotype"],
                          "params": runs_column(selected, f"metrics.{PARAMS_METRIC}").astype(float),
                          "macs": runs_column(selected, "metrics.macs").astype(float),
                          "latency_ms": runs_column(selected, f"metrics.{LATENCY_METRIC}").astype(float),
                          "images_per_second": runs_column(selected, f"metrics.{THROUGHPUT_METRIC}").astype(float),
                          "latency_comparable": comparable_latency(selected),
                          metric: runs_column(selected, f"metrics.{metric}").astype(float),
                          "run_id": selected["run_id"]})
    table = table.dropna(subset=[metric]).dropna(subset=["params", "macs"], how="all").reset_index(drop=True)
    table["pareto_params"] = pareto_front(table, "params", metric)
    table["pareto_macs"] = pareto_front(table, "macs", metric)
    like = table.assign(latency_ms=table["latency_ms"].where(table["latency_comparable"].astype(bool)))
    table["pareto_latency"] = pareto_front(like, "latency_ms", metric)
    return table.sort_values(metric, ascending=False, kind="stable", ignore_index=True)


def runs_column(runs: pd.DataFrame, name: str) -> pd.Series:
    """A runs column, or an all-missing one when no run logged it."""
    if name in runs:
        return runs[name]
    return pd.Series(np.nan, index=runs.index, dtype=object)


def _numbers_if_possible(values: pd.Series) -> pd.Series:
    """Params are logged as text; `0.065` reads back as a number so it sorts and plots as one."""
    try:
        return pd.to_numeric(values)
    except (TypeError, ValueError):
        return values
