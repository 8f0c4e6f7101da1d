"""The report's "Paper-comparable numbers": the final phase's runs (chosen on validation ids, retrained on every
training id, tested once) and, for a study whose point is a comparison, its sides next to each other.

A final phase with `configs.group_by` (one final per SAM mode, per genotype origin) tags each run with
`msinet.final_group_by` and `msinet.final_group`; the comparison table puts the sides side by side on the
target metrics, source metrics beside them, each a mean with a bootstrap 95 % interval where a side has
repeats. A launch the authors would have started from pretrained weights says so above the tables.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import uncertainty
from analysis.report_files import markdown_table, save_csv
from analysis.tables import GROUP_ORDER, SAM_ORDER, runs_column

FINAL_METRICS = ("source/mAP", "source/rank1", "source/mINP", "target/mAP", "target/rank1", "target/mINP")
SIDE_METRICS = ("target/mAP", "target/rank1", "source/mAP", "source/rank1")  # the target first: what SAM is for
SHOWN_PARAMS = ("lr", "sam_mode", "sam_ratio", "weight_decay", "triplet_margin")
FROM_SCRATCH_TAG = "tags.msinet.from_scratch"
SIDE_ORDER = {"sam_mode": SAM_ORDER, "group": GROUP_ORDER}


def final_section(out: Path, runs: pd.DataFrame, launches: pd.DataFrame, written: list[Path]) -> list[str]:
    """report.md lines: the from-scratch warning, the sides compared, every final run."""
    final = runs[runs["group"] == "final"] if "group" in runs else runs.iloc[:0]
    if final.empty:
        return ["No final phase in this launch. Its test numbers come from networks trained without the "
                "validation hold-out's identities, so they are not directly comparable with the paper's."]
    lines = from_scratch_lines(launches)
    lines += ["The configurations chosen on the validation identities, retrained on every training identity "
              "(no hold-out) and tested once: the numbers to compare with the paper.", ""]
    by, sides = final_sides(final)
    if by is not None:
        save_csv(sides, out / "final_comparison.csv", written)
        metrics = [m for m in SIDE_METRICS if m in sides]
        lines += [f"One final per `{by}`, side by side{' on the target domain' if 'target/mAP' in sides else ''}: "
                  "the mean of each side's finished runs, with a bootstrap 95 % interval where the side has repeats "
                  "(`final_comparison.csv` has the bounds).", "",
                  markdown_table(sides_shown(sides, by, metrics)), ""]
    columns = ["trial", "status", "genotype", *[c for c in runs if c.startswith("params.") and c[7:] in SHOWN_PARAMS],
               *[f"metrics.{m}" for m in FINAL_METRICS if f"metrics.{m}" in runs],
               *[f"tags.msinet.{t}" for t in ("selected_from", "selected_score") if f"tags.msinet.{t}" in runs]]
    table = final[columns].rename(columns=lambda c: c.rsplit(".", 1)[-1])
    if "selected_score" in table:  # a tag: text
        table["selected_score"] = pd.to_numeric(table["selected_score"], errors="coerce")
    save_csv(table, out / "final.csv", written)
    return lines + (["Every final run:", ""] if by is not None else []) + [markdown_table(table)]


def from_scratch_lines(launches: pd.DataFrame) -> list[str]:
    """The parent runs' `msinet.from_scratch` tag, repeated as a warning (one line per launch that has it)."""
    if FROM_SCRATCH_TAG not in launches:
        return []
    tagged = launches.dropna(subset=[FROM_SCRATCH_TAG])
    lines = [f"> **{text}** (launch {launch})" for launch, text in zip(tagged["launch"], tagged[FROM_SCRATCH_TAG],
                                                                     strict=True)]
    return [*lines, ""] if lines else []


def final_sides(final: pd.DataFrame, seed: int = uncertainty.SEED) -> tuple[str | None, pd.DataFrame]:
    """(the `group_by` key, one row per side): n, the trials, and per metric its mean, ci_low and ci_high (the
    bounds only where the side has two runs or more). (None, empty) when the final phase was not grouped."""
    by_values = runs_column(final, "tags.msinet.final_group_by").dropna()
    if by_values.empty:
        return None, pd.DataFrame()
    by = str(by_values.iloc[0])
    finished = final[(final["status"] == "FINISHED") & runs_column(final, "tags.msinet.final_group").notna()]
    metrics = [m for m in SIDE_METRICS if runs_column(finished, f"metrics.{m}").notna().any()]
    order = {name: i for i, name in enumerate(SIDE_ORDER.get(by, ()))}
    side_of = finished["tags.msinet.final_group"].astype(str)
    rows = []
    for position, side in enumerate(sorted(side_of.unique(), key=lambda s: (order.get(s, len(order)), s))):
        block = finished[side_of == side]
        row = {by: side, "n": len(block), "trials": ", ".join(block["trial"].astype(str))}
        for metric in metrics:
            values = block[f"metrics.{metric}"].dropna().astype(float).to_numpy()
            low, high = uncertainty.bootstrap_interval(values, seed + position) if len(values) > 1 else (None, None)
            row.update({metric: values.mean() if len(values) else None, f"{metric} ci_low": low,
                        f"{metric} ci_high": high})
        rows.append(row)
    return by, pd.DataFrame(rows)


def sides_shown(sides: pd.DataFrame, by: str, metrics: list[str]) -> pd.DataFrame:
    """report.md's view: `0.2512 [0.2301, 0.2755]` where there is an interval, the mean alone otherwise."""
    def shown(row: pd.Series, metric: str) -> str:
        mean, low, high = row[metric], row[f"{metric} ci_low"], row[f"{metric} ci_high"]
        if pd.isna(mean):
            return ""
        return f"{mean:.4f}" if pd.isna(low) else f"{mean:.4f} [{low:.4f}, {high:.4f}]"

    table = sides[[by, "n"]].copy()
    for metric in metrics:
        table[metric] = [shown(row, metric) for _, row in sides.iterrows()]
    table["trials"] = sides["trials"]
    return table
