"""How much of a group comparison is noise: seeded bootstrap intervals of group means and the probability
that one group beats another.

NAS comparisons from a handful of runs mislead without this (Li and Talwalkar 2019; Yang et al. 2020). The
interval is the percentile bootstrap of the mean (resampling a group's trials with replacement); "A beats
B" is the share of paired bootstrap draws in which A's resampled mean exceeds B's (ties count half). With
fewer than `MIN_TRIALS` trials in a group the bootstrap has almost nothing to resample, and the comparison
is called anecdotal.

A *choice* (the champion, the genotypes a phase hands on, the best trial of a leaderboard) rests on one
validation split: `cluster_interval` is the bootstrap interval of a trial's score resampling the held-out
identities (each with all its queries), and `choice` calls a choice *undecided* when the best trial's
interval overlaps the runner-up's. Those two need numpy alone: the trials compute their intervals with them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MIN_TRIALS = 3
RESAMPLES = 4000
LEVEL = 0.95
SEED = 0
PAIR_COLUMNS = ["a", "b", "n_a", "n_b", "mean_a", "mean_b", "difference", "p_a_beats_b", "anecdotal"]


def bootstrap_means(values: Sequence[float], rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """`resamples` means of the values resampled with replacement (empty input: an empty array)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.empty(0)
    return values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)


def bootstrap_interval(values: Sequence[float], seed: int = SEED, resamples: int = RESAMPLES,
                       level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean; (nan, nan) without values, (v, v) for one value."""
    means = bootstrap_means(values, np.random.default_rng(seed), resamples)
    if means.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def beat_probability(a: Sequence[float], b: Sequence[float], seed: int = SEED, resamples: int = RESAMPLES) -> float:
    """P(mean of a bootstrap draw of `a` > that of `b`), ties counting half; nan when a group is empty."""
    rng = np.random.default_rng(seed)
    means_a, means_b = bootstrap_means(a, rng, resamples), bootstrap_means(b, rng, resamples)
    if means_a.size == 0 or means_b.size == 0:
        return float("nan")
    return float(np.mean(means_a > means_b) + 0.5 * np.mean(means_a == means_b))


def interval_summary(long: pd.DataFrame, by: str | list[str], value: str, seed: int = SEED,
                     resamples: int = RESAMPLES) -> pd.DataFrame:
    """Per category of `by`: n, mean, the bootstrap 95 % interval (ci_low, ci_high), std, min, median, max,
    the best trial and `anecdotal` (n < 3); categories in first-seen order, each group seeded from `seed`
    and its position so that adding a group leaves the others' intervals unchanged."""
    import pandas as pd

    columns = ([by] if isinstance(by, str) else list(by))
    header = [*columns, "n", "mean", "ci_low", "ci_high", "std", "min", "median", "max", "best_trial", "anecdotal"]
    if long.empty:
        return pd.DataFrame(columns=header)
    rows = []
    for position, (key, group) in enumerate(long.groupby(by, sort=False, dropna=False)):
        values = group[value].to_numpy(dtype=float)
        low, high = bootstrap_interval(values, seed + position, resamples)
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(columns, keys, strict=True)), "n": len(values), "mean": values.mean(),
                     "ci_low": low, "ci_high": high, "std": values.std(ddof=1) if len(values) > 1 else np.nan,
                     "min": values.min(), "median": np.median(values), "max": values.max(),
                     "best_trial": group.loc[group[value].idxmax(), "trial"], "anecdotal": len(values) < MIN_TRIALS})
    return pd.DataFrame(rows, columns=header)


def pair_table(long: pd.DataFrame, by: str, value: str, pairs: Iterable[tuple[str, str]], seed: int = SEED,
               resamples: int = RESAMPLES) -> pd.DataFrame:
    """For each (a, b) whose groups both have trials: sizes, means, mean difference, P(a beats b) and
    `anecdotal` (either group has fewer than 3 trials). Pairs with an empty group are left out."""
    import pandas as pd

    rows = []
    for position, (a, b) in enumerate(pairs):
        values_a = long.loc[long[by] == a, value].to_numpy(dtype=float)
        values_b = long.loc[long[by] == b, value].to_numpy(dtype=float)
        if values_a.size == 0 or values_b.size == 0:
            continue
        rows.append({"a": a, "b": b, "n_a": values_a.size, "n_b": values_b.size, "mean_a": values_a.mean(),
                     "mean_b": values_b.mean(), "difference": values_a.mean() - values_b.mean(),
                     "p_a_beats_b": beat_probability(values_a, values_b, seed + position, resamples),
                     "anecdotal": min(values_a.size, values_b.size) < MIN_TRIALS})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def anecdote_sentence(summary: pd.DataFrame, by: str | list[str]) -> str | None:
    """One sentence naming the groups with fewer than 3 trials, or None when every group has enough."""
    small = summary[summary["anecdotal"].astype(bool)]
    if small.empty:
        return None
    columns = [by] if isinstance(by, str) else list(by)
    names = ", ".join(" / ".join(str(row[c]) for c in columns) + f" (n={row['n']})" for _, row in small.iterrows())
    return (f"**Anecdotal**: fewer than {MIN_TRIALS} trials in {names}; an interval from so few runs says "
            "little, and no comparison with such a group is evidence either way.")


def cluster_interval(values: Sequence[float], groups: Sequence[Any], seed: int = SEED, resamples: int = RESAMPLES,
                     level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` (one per query), resampling whole groups
    (the queries' identities) with replacement: the queries of one identity share its appearance, so
    resampling them one by one would call a split of 4 identities as precise as one of 40. (nan, nan)
    without values; (v, v) when every draw gives the same mean."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    _, index = np.unique(np.asarray(groups), return_inverse=True)
    sums, counts = np.bincount(index, weights=values), np.bincount(index)
    draws = np.random.default_rng(seed).integers(0, sums.size, size=(resamples, sums.size))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def interval_keys(metric: str) -> tuple[str, str]:
    """The names a trial reports a score's interval under: `val/mAP` -> `val/mAP_ci_low`, `val/mAP_ci_high`."""
    return f"{metric}_ci_low", f"{metric}_ci_high"


def candidate(name: str, metrics: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """One trial as `choice` sees it, from its flat metrics (`val/mAP`, `val/mAP_ci_low`, ...): name, value,
    low, high, and the size of the split it was scored on (`queries`, `ids`; nan when not reported)."""
    prefix = metric.split("/", 1)[0]
    low, high = interval_keys(metric)
    return {"name": name, "value": _number(metrics.get(metric)), "low": _number(metrics.get(low)),
            "high": _number(metrics.get(high)), "queries": _number(metrics.get(f"{prefix}/num_valid_queries")),
            "ids": _number(metrics.get(f"{prefix}/num_valid_ids"))}


def choice(candidates: Sequence[Mapping[str, Any]], mode: str = "max") -> dict[str, Any] | None:
    """The best candidate by value (`mode` max or min), the runner-up, and the verdict: `decided` when their
    intervals are disjoint, `undecided` when they overlap, `no interval` when one is missing, `only
    candidate` without a runner-up. None when no candidate has a value."""
    scored = [c for c in candidates if not math.isnan(c["value"])]
    if not scored:
        return None
    ranked = sorted(scored, key=lambda c: c["value"], reverse=mode == "max")
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    if runner_up is None:
        verdict = "only candidate"
    elif any(math.isnan(c[k]) for c in (best, runner_up) for k in ("low", "high")):
        verdict = "no interval"
    else:
        verdict = "undecided" if best["low"] <= runner_up["high"] and runner_up["low"] <= best["high"] else "decided"
    return {"best": best, "runner_up": runner_up, "verdict": verdict}


def score_text(item: Mapping[str, Any]) -> str:
    """`0.5437 (95 % CI 0.310-0.780)`, or the value alone without an interval."""
    if math.isnan(item["low"]) or math.isnan(item["high"]):
        return f"{item['value']:.4f} (no interval)"
    return f"{item['value']:.4f} (95 % CI {item['low']:.3f}-{item['high']:.3f})"


def size_text(item: Mapping[str, Any]) -> str:
    """`32 queries of 16 identities`: the validation size behind a score."""
    if math.isnan(item["queries"]):
        return "an unreported number of queries"
    ids = "" if math.isnan(item["ids"]) else f" of {item['ids']:.0f} identities"
    return f"{item['queries']:.0f} queries{ids}"


def choice_text(decision: Mapping[str, Any] | None, metric: str) -> str:
    """A choice in one sentence: the chosen trial's score with its interval and validation size, the
    runner-up's, and the verdict (`undecided` when the intervals overlap)."""
    if decision is None:
        return f"no trial has {metric}: nothing to choose by"
    best, runner_up = decision["best"], decision["runner_up"]
    text = f"{best['name']} by {metric} {score_text(best)} on {size_text(best)}"
    if runner_up is None:
        return text + "; the only candidate"
    text += f"; runner-up {runner_up['name']} {score_text(runner_up)}"
    return text + {"decided": ": the intervals are disjoint, decided",
                   "undecided": ": the intervals overlap, so the choice is undecided",
                   "no interval": ": without both intervals, whether it is decided is unknown"}[decision["verdict"]]


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number
