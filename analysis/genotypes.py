"""Genotype statistics as DataFrames: which operation won each of the 12 slots, and how α got there.

The slot layout and the operation order are those of `spaces/genotype.py` (cell k uses slots 2k and 2k + 1;
α's columns are none, exc, ag, cross_att). They are restated here because importing `spaces` imports torch,
which a report on a laptop should not need; tests/analysis/test_genotypes.py checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

OPERATIONS: tuple[str, ...] = ("none", "exc", "ag", "cross_att")
NUM_CELLS = 6
NUM_SLOTS = 2 * NUM_CELLS
FINISHED = ("FINISHED",)


def genotype_slots(text: Any) -> list[str] | None:
    """The 12 operations of a compact genotype (`exc-ag/exc-none/...`); None when missing or malformed."""
    if not isinstance(text, str):
        return None
    groups = text.strip().replace("|", "/").split("/")
    ops = [op for group in groups for op in group.replace("-", " ").split()]
    if len(groups) != NUM_CELLS or len(ops) != NUM_SLOTS or any(op not in OPERATIONS for op in ops):
        return None
    return ops


def slot_label(slot: int) -> str:
    """`cell 2 step 1` for slot 4: the name a reader of docs/method.md looks for."""
    return f"cell {slot // 2} step {slot % 2 + 1}"


def slot_frame() -> pd.DataFrame:
    """The 12 slots with their cell and step: the left columns of every per-slot table."""
    slots = np.arange(NUM_SLOTS)
    return pd.DataFrame({"slot": slots, "cell": slots // 2, "step": slots % 2 + 1})


def operation_counts(runs: pd.DataFrame, statuses: Iterable[str] | None = FINISHED) -> pd.DataFrame:
    """How often each operation won each slot over the search trials (`kind` search) with a genotype.

    One row per slot: slot, cell, step, one count column per operation, and `trials` (the search trials
    counted, so each row's counts sum to it). Only trials whose status is in `statuses` count (default:
    finished ones, whose genotype is final); None counts every search trial that has a genotype.
    """
    search = runs[runs["kind"] == "search"]
    if statuses is not None:
        search = search[search["status"].isin(list(statuses))]
    genotypes = [ops for ops in (genotype_slots(text) for text in search["genotype"]) if ops is not None]
    counts = np.zeros((NUM_SLOTS, len(OPERATIONS)), dtype=int)
    for ops in genotypes:
        for slot, op in enumerate(ops):
            counts[slot, OPERATIONS.index(op)] += 1
    table = pd.concat([slot_frame(), pd.DataFrame(counts, columns=list(OPERATIONS))], axis=1)
    table["trials"] = len(genotypes)
    return table


def alpha_frame(history: np.ndarray) -> pd.DataFrame:
    """An `alpha_history.npy` array (epochs x 12 x 4 softmax(α)) in long form, like `alpha_history.csv`:
    epoch (from 1), slot, cell, step, operation, weight."""
    history = np.asarray(history, dtype=float).reshape(-1, NUM_SLOTS, len(OPERATIONS))
    epochs, slots, ops = np.meshgrid(np.arange(1, len(history) + 1), np.arange(NUM_SLOTS),
                                     np.arange(len(OPERATIONS)), indexing="ij")
    return pd.DataFrame({"epoch": epochs.ravel(), "slot": slots.ravel(), "cell": slots.ravel() // 2,
                         "step": slots.ravel() % 2 + 1,
                         "operation": np.asarray(OPERATIONS, dtype=object)[ops.ravel()],
                         "weight": history.ravel()})


def final_alpha(history: pd.DataFrame) -> pd.DataFrame:
    """The last epoch's softmax(α) as a 12 x 4 matrix: index slot, one column per operation (empty if none)."""
    if history.empty:
        return pd.DataFrame(columns=list(OPERATIONS), index=pd.RangeIndex(0, name="slot"), dtype=float)
    last = history[history["epoch"] == history["epoch"].max()]
    matrix = last.pivot(index="slot", columns="operation", values="weight")
    return matrix.reindex(index=range(NUM_SLOTS), columns=list(OPERATIONS)).rename_axis(index="slot", columns=None)


def slot_table(genotypes: Mapping[str, Any]) -> pd.DataFrame:
    """Genotypes side by side, one row per slot, `differs` true where they disagree (unreadable ones: None)."""
    table = slot_frame()
    for label, text in genotypes.items():
        table[label] = genotype_slots(text) or [None] * NUM_SLOTS
    values = table[list(genotypes)]
    table["differs"] = values.nunique(axis=1, dropna=False) > 1
    return table
