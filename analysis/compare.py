"""Runs side by side (`python -m analysis compare RUN_ID ...`): the params that differ, the metrics, and the
genotypes slot by slot, with every row whose values differ marked."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis.genotypes import slot_label, slot_table

RUN_FIELDS = ("run_id", "experiment_id", "launch", "phase", "kind", "group", "status", "stopped_early", "error",
              "wall_seconds", "genotype")
METRIC_ORDER = ("source/", "target/", "val/")
MARK = "*"


def run_labels(runs: pd.DataFrame) -> list[str]:
    """Column labels: the trial names, with the run id's start added where names repeat (two launches)."""
    names = list(runs["trial"].fillna(runs["run_id"]))
    return [f"{name} [{run_id[:8]}]" if names.count(name) > 1 else name
            for name, run_id in zip(names, runs["run_id"], strict=True)]


def compare_runs(runs: pd.DataFrame, all_params: bool = False) -> pd.DataFrame:
    """One column per run (rows of `runs.load_runs_by_id`), rows `section` x `field`, `differs` `*` or ``.

    Sections: run (identity, status, genotype), param (only those that differ unless `all_params`; with one run,
    all), metric (latest values; source, target, val first) and slot (the 12 genotype slots).
    """
    labels = run_labels(runs)
    rows: list[dict[str, Any]] = []

    def add(section: str, field: str, values: list[Any]) -> None:
        marked = field != "run_id" and _differ(values)  # run ids always differ
        rows.append({"section": section, "field": field, **dict(zip(labels, values, strict=True)),
                     "differs": MARK if marked else ""})

    genotype = runs["genotype"]
    if "params.genotype" in runs:  # a trial that died before reporting has only the spec it was given
        genotype = genotype.fillna(runs["params.genotype"])
    for field in RUN_FIELDS:
        add("run", field, list(genotype if field == "genotype" else runs[field]))
    params = sorted(column for column in runs.columns if column.startswith("params."))
    for column in params:
        values = list(runs[column])
        if all_params or len(runs) == 1 or _differ(values):
            add("param", column.removeprefix("params."), values)
    metrics = sorted((column for column in runs.columns if column.startswith("metrics.")), key=_metric_key)
    for column in metrics:
        add("metric", column.removeprefix("metrics."), list(runs[column]))
    slots = slot_table(dict(zip(labels, genotype, strict=True)))
    for slot, values in zip(slots["slot"], slots[labels].itertuples(index=False, name=None), strict=True):
        add("slot", f"{slot:>2} {slot_label(slot)}", list(values))
    return pd.DataFrame(rows, columns=["section", "field", *labels, "differs"])


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison as left-aligned fixed-width text for a terminal."""
    cells = [list(table.columns)] + [[_text(value) for value in row] for row in table.itertuples(index=False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def _metric_key(column: str) -> tuple[int, str]:
    name = column.removeprefix("metrics.")
    prefix = next((i for i, p in enumerate(METRIC_ORDER) if name.startswith(p)), len(METRIC_ORDER))
    return prefix, name


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _differ(values: list[Any]) -> bool:
    return len({None if _missing(v) else v for v in values}) > 1


def _text(value: Any) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
