"""Was a genotype decided, or is it the argmax of noise? Decision margins of softmax(α) and the agreement
between the search trials of a launch, as DataFrames.

A slot's *margin* is the winner's softmax(α) minus the runner-up's at the last epoch; its *entropy* is that
of the slot's four weights (nats; uniform is ln 4 = 1.386). A slot whose margin is below `THRESHOLD` is
*undecided*: 0.05 is ten times the spread a smoke search leaves (weights between 0.246 and 0.256), and at
four operations it still lets a winner at 0.29 over a runner-up at 0.24 count as a choice, not a tie.

Wherever a searched genotype is shown (leaderboards, MLflow tags and run descriptions, Optuna user
attributes, the registry) it is shown with its margins: `decision_text` marks each undecided slot with `?`
(`exc?-ag/...`) and adds how many slots were decided and the range of the margins.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.genotypes import NUM_SLOTS, OPERATIONS, genotype_slots, slot_frame

THRESHOLD = 0.05
MARGIN_COLUMNS = ["trial", "slot", "cell", "step", "winner", "winner_weight", "runner_up", "runner_up_weight",
                  "margin", "entropy", "decided"]


def slot_margins(history: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """Per slot of an α history (`genotypes.alpha_frame` long form) at its last epoch: slot, cell, step,
    winner and runner-up with their weights, margin, entropy and `decided` (margin >= threshold)."""
    if history.empty:
        return pd.DataFrame(columns=MARGIN_COLUMNS[1:])
    last = history[history["epoch"] == history["epoch"].max()]
    matrix = last.pivot(index="slot", columns="operation", values="weight")
    weights = matrix.reindex(index=range(NUM_SLOTS), columns=list(OPERATIONS)).to_numpy(dtype=float)
    order = np.argsort(-weights, axis=1, kind="stable")
    rows = np.arange(NUM_SLOTS)
    top, second = weights[rows, order[:, 0]], weights[rows, order[:, 1]]  # top - second: weight_margins
    safe = np.clip(weights, 1e-12, None)
    entropy = -(weights * np.log(safe)).sum(axis=1)
    names = np.asarray(OPERATIONS, dtype=object)
    table = slot_frame()
    table["winner"], table["winner_weight"] = names[order[:, 0]], top
    table["runner_up"], table["runner_up_weight"] = names[order[:, 1]], second
    table["margin"], table["entropy"] = top - second, entropy
    table["decided"] = table["margin"] >= threshold
    return table


def weight_margins(weights) -> np.ndarray:
    """Per slot of a softmax(α) matrix (12 x 4, rows slots, columns `OPERATIONS`): the winner's weight
    minus the runner-up's."""
    ranked = np.sort(np.asarray(weights, dtype=float), axis=1)
    return ranked[:, -1] - ranked[:, -2]


def marked_genotype(genotype: str, margins, threshold: float = THRESHOLD) -> str:
    """The compact genotype with `?` after the operation of every undecided slot: `exc?-ag/none?-...`."""
    ops = genotype_slots(genotype)
    if ops is None or len(margins) != NUM_SLOTS:
        return str(genotype)
    marked = [op + ("?" if margin < threshold else "") for op, margin in zip(ops, margins, strict=True)]
    return "/".join(f"{marked[2 * cell]}-{marked[2 * cell + 1]}" for cell in range(NUM_SLOTS // 2))


def decision_text(genotype: str, weights, threshold: float = THRESHOLD) -> str:
    """A searched genotype as it should be shown: `exc?-ag?/... (0 of 12 slots decided, margins 0.001-0.007)`,
    from the search's last softmax(α) (12 x 4); the genotype alone when the weights are unusable."""
    array = np.asarray(weights, dtype=float) if weights is not None else np.zeros(0)
    if array.shape != (NUM_SLOTS, len(OPERATIONS)) or genotype_slots(genotype) is None:
        return str(genotype)
    margins = weight_margins(array)
    decided = int((margins >= threshold).sum())
    return (f"{marked_genotype(genotype, margins, threshold)} ({decided} of {NUM_SLOTS} slots decided, margins "
            f"{margins.min():.3f}-{margins.max():.3f})")


def trial_margins(histories: Mapping[str, pd.DataFrame], threshold: float = THRESHOLD) -> pd.DataFrame:
    """`slot_margins` of several search trials ({trial: history}), one block of 12 rows per trial."""
    blocks = [slot_margins(history, threshold).assign(trial=trial) for trial, history in histories.items()
              if not history.empty]
    if not blocks:
        return pd.DataFrame(columns=MARGIN_COLUMNS)
    return pd.concat(blocks, ignore_index=True)[MARGIN_COLUMNS]


def decision_summary(margins: pd.DataFrame, threshold: float = THRESHOLD) -> pd.DataFrame:
    """One row per trial: decided slots (of 12), smallest, median and largest margin, mean entropy, and a
    verdict: `decided` (every slot), `partly decided` or `undecided` (no slot reaches the threshold)."""
    columns = ["trial", "decided_slots", "min_margin", "median_margin", "max_margin", "mean_entropy", "verdict"]
    if margins.empty:
        return pd.DataFrame(columns=columns)
    grouped = margins.groupby("trial", sort=False)
    table = pd.DataFrame({"decided_slots": grouped["decided"].sum().astype(int),
                          "min_margin": grouped["margin"].min(), "median_margin": grouped["margin"].median(),
                          "max_margin": grouped["margin"].max(), "mean_entropy": grouped["entropy"].mean()})
    slots = grouped.size()
    table["verdict"] = np.where(table["decided_slots"] == slots, "decided",
                                np.where(table["decided_slots"] == 0, "undecided", "partly decided"))
    return table.reset_index()[columns]


def verdict_sentences(summary: pd.DataFrame, threshold: float = THRESHOLD) -> list[str]:
    """The summary in words, one sentence per trial, saying plainly when a whole genotype is undecided."""
    lines = []
    for row in summary.itertuples():
        facts = (f"{row.decided_slots} of {NUM_SLOTS} slots decided (margin >= {threshold:g}), margins "
                 f"{row.min_margin:.3f} to {row.max_margin:.3f}")
        if row.verdict == "undecided":
            lines.append(f"`{row.trial}`: **the whole genotype is undecided**: {facts}; its operations are the "
                         "argmax of near-uniform weights, not a choice of the search.")
        elif row.verdict == "partly decided":
            lines.append(f"`{row.trial}`: partly decided: {facts}; the undecided slots are not a choice.")
        else:
            lines.append(f"`{row.trial}`: decided: {facts}.")
    return lines


def counts_with_margins(runs: pd.DataFrame, margins: pd.DataFrame, statuses=("FINISHED",)) -> pd.DataFrame:
    """The "operation won per slot" counts with the mean margin of the trials behind each count: one row
    per slot, one text column per operation (`2 (Δ 0.004)`; `2 (Δ ?)` when those trials have no α history,
    empty where no trial chose it) and `trials`. Same trials as `genotypes.operation_counts`."""
    search = runs[(runs["kind"] == "search") & runs["status"].isin(list(statuses))]
    by_trial = {trial: block.set_index("slot")["margin"] for trial, block in margins.groupby("trial")}
    chosen: dict[tuple[int, str], list[float]] = {}
    trials = 0
    for trial, text in zip(search["trial"], search["genotype"], strict=True):
        ops = genotype_slots(text)
        if ops is None:
            continue
        trials += 1
        for slot, op in enumerate(ops):
            margin = by_trial[trial].get(slot, np.nan) if trial in by_trial else np.nan
            chosen.setdefault((slot, op), []).append(margin)
    table = slot_frame()
    for op in OPERATIONS:
        table[op] = [_count_cell(chosen.get((slot, op), [])) for slot in range(NUM_SLOTS)]
    table["trials"] = trials
    return table


def agreement(runs: pd.DataFrame, statuses=("FINISHED",)) -> pd.DataFrame:
    """How often the search trials of each launch pick the same operation per slot: launch, slot, cell,
    step, trials, the most chosen operation (tied ones joined by ` / `), the share of trials choosing it, and
    the share of trial pairs that agree (1.0 = unanimous; about 0.25 expected from four operations drawn at
    random)."""
    search = runs[(runs["kind"] == "search") & runs["status"].isin(list(statuses))]
    blocks = []
    for launch, group in search.groupby(search["launch"].fillna("?"), sort=False):
        genotypes = [ops for ops in (genotype_slots(text) for text in group["genotype"]) if ops is not None]
        if not genotypes:
            continue
        table = slot_frame()
        table.insert(0, "launch", launch)
        table["trials"] = len(genotypes)
        modal, share, pairs = [], [], []
        for slot in range(NUM_SLOTS):
            counts = pd.Series([ops[slot] for ops in genotypes]).value_counts()
            modal.append(" / ".join(op for op in OPERATIONS if counts.get(op, 0) == counts.iloc[0]))  # ties: all
            share.append(counts.iloc[0] / len(genotypes))
            n = len(genotypes)
            pairs.append(float((counts * (counts - 1)).sum() / (n * (n - 1))) if n > 1 else np.nan)
        table["most_chosen"], table["share"], table["pair_agreement"] = modal, share, pairs
        blocks.append(table)
    columns = ["launch", "slot", "cell", "step", "trials", "most_chosen", "share", "pair_agreement"]
    return pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=columns)


def _count_cell(margins: list[float]) -> str:
    if not margins:
        return ""
    known = [m for m in margins if not np.isnan(m)]
    return f"{len(margins)} (Δ {np.mean(known):.3f})" if known else f"{len(margins)} (Δ ?)"
