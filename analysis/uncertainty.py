"""How much of a group comparison is noise: seeded bootstrap intervals of group means and the probability
that one group beats another.

NAS comparisons from a handful of runs mislead without this (Li and Talwalkar 2019; Yang et al. 2020). The
interval is the percentile bootstrap of the mean (resampling a group's trials with replacement); "A beats
B" is the share of paired bootstrap draws in which A's resampled mean exceeds B's (ties count half). With
fewer than `MIN_TRIALS` trials in a group the bootstrap has almost nothing to resample, and the comparison
is called anecdotal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
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
