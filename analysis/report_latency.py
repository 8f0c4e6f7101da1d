"""The accuracy/latency section of a report: what a hardware-aware study (`metric: [val/mAP, latency/ms]`)
is judged by. The search trials at each λ on the front of val/mAP against the cost table's predicted
latency, the retrained networks' accuracy against their measured latency, and how well the table's
predictions ranked the measurements."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.report_files import markdown_table, save_csv, save_png
from analysis.tables import LATENCY_METRIC, comparable_latency, pareto_front, runs_column

PREDICTED = "metrics.latency/ms"


def latency_frames(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(search, retrained): finished trials with a predicted latency, each marked `on_front`.

    search: trial, latency_weight (λ), genotype, val/mAP, predicted_ms, expected_ms (under softmax(α)).
    retrained: trial, phase, group, genotype, source/mAP, predicted_ms, measured_ms (batch 1, the trial's device),
    table, measured_at, measured_on, shared and `comparable` (`tables.comparable_latency`): the front is drawn on
    the comparable measurements only, else on the predictions.
    """
    done = runs[(runs["status"] == "FINISHED") & runs_column(runs, PREDICTED).notna()]
    search = done[done["kind"] == "search"]
    search = pd.DataFrame({
        "trial": search["trial"], "latency_weight": _number(search, "params.latency_weight").fillna(0.0),
        "genotype": search["genotype"], "val/mAP": _number(search, "metrics.val/mAP"),
        "predicted_ms": _number(search, PREDICTED), "expected_ms": _number(search, "metrics.latency/expected_ms"),
    }).dropna(subset=["val/mAP"]).reset_index(drop=True)
    search["on_front"] = pareto_front(search, "predicted_ms", "val/mAP")
    retrained = done[done["kind"] == "retrain"]
    retrained = pd.DataFrame({
        "trial": retrained["trial"], "phase": retrained["phase"], "group": retrained["group"],
        "genotype": retrained["genotype"], "source/mAP": _number(retrained, "metrics.source/mAP"),
        "predicted_ms": _number(retrained, PREDICTED), "measured_ms": _number(retrained, f"metrics.{LATENCY_METRIC}"),
        "table": runs_column(retrained, "tags.msinet.latency_table"),
        "measured_at": runs_column(retrained, "tags.msinet.latency_measured_at"),
        "measured_on": runs_column(retrained, "tags.msinet.latency_measured_on"),
        "shared": runs_column(retrained, "tags.msinet.latency_shared"),
        "comparable": comparable_latency(retrained),
    }).dropna(subset=["source/mAP"]).reset_index(drop=True)
    if retrained["comparable"].any():
        like = retrained.assign(measured_ms=retrained["measured_ms"].where(retrained["comparable"].astype(bool)))
        retrained["on_front"] = pareto_front(like, "measured_ms", "source/mAP")
    else:
        retrained["on_front"] = pareto_front(retrained, "predicted_ms", "source/mAP")
    return (search.sort_values("predicted_ms", ignore_index=True),
            retrained.sort_values(["phase", "predicted_ms"], ignore_index=True))


def latency_section(out: Path, runs: pd.DataFrame, written: list[Path]) -> list[str]:
    search, retrained = latency_frames(runs)
    tuned = search["latency_weight"].nunique() > 1 or (search["latency_weight"] > 0).any()
    if not tuned:
        return ["No latency-aware search in this launch (every search ran with latency_weight 0); the retrains' "
                "measured latencies are in *Accuracy vs cost*."]
    lines = []
    if not search.empty:
        save_csv(search, out / "latency_search.csv", written)
        weights = search["latency_weight"]
        lines += [f"{len(search)} finished search trials with λ from {weights.min():.3g} to {weights.max():.3g}; "
                  f"{int(search['on_front'].sum())} on the front of val/mAP against predicted latency "
                  "(ms per image, from the trials' cost table; `expected_ms` is under softmax(α)):", "",
                  markdown_table(search.round(4)), ""]
    if not retrained.empty:
        save_csv(retrained, out / "latency_retrained.csv", written)
        measured = retrained[retrained["comparable"].astype(bool)]
        lines += [f"{len(retrained)} retrained networks; {int(retrained['on_front'].sum())} on the front of "
                  f"source/mAP against {_front_cost(retrained)}:", "", markdown_table(retrained.round(4)), ""]
        lines += [_agreement(measured), ""]
    save_png(figures.plot_latency_front(search, retrained, out / "latency_front.png"), written)
    return lines + ["![accuracy against latency](latency_front.png)"]


def _front_cost(retrained: pd.DataFrame) -> str:
    """What the retrained front is drawn against, and which measurements it leaves out and why."""
    measured = retrained["measured_ms"].notna()
    comparable = retrained["comparable"].astype(bool)
    if not comparable.any():
        why = ("every one was measured on a device other trials shared" if measured.any() else "none was measured")
        return f"the table's predicted latency ({why})"
    first = retrained[comparable].iloc[0]
    left = measured & ~comparable
    shared = left & retrained["shared"].fillna("").astype(str).str.startswith("yes")
    note = (f"; {int(left.sum())} measurement(s) left out: {int(shared.sum())} on a shared device, "
            f"{int((left & ~shared).sum())} at another size or on another device" if left.any() else "")
    at = first["measured_at"] if pd.notna(first["measured_at"]) else "size not recorded"
    on = first["measured_on"] if pd.notna(first["measured_on"]) else "a device not recorded"
    return f"measured latency (ms per image at batch 1, {at} on {on}, no other trial beside it{note})"


def _agreement(measured: pd.DataFrame) -> str:
    """How well the tables' predictions ranked the measurements, when they are of the same input size."""
    sizes = {str(t).split("|")[2] for t in measured["table"].dropna() if str(t).count("|") >= 3}
    at = set(measured["measured_at"].dropna())
    if sizes and at and sizes != at:
        return (f"Measured at {', '.join(sorted(at))} (the training size), predicted at {', '.join(sorted(sizes))} "
                "(the cost table's): not comparable. A table at the training size (`python -m spaces.latency "
                "--height H --width W`, then `latency_table: /abs/path.json`) makes them so.")
    if len(measured) < 4 or measured["predicted_ms"].nunique() < 2:
        return f"{len(measured)} measured latencies: too few to judge the table's ranking (4 or more needed)."
    rho = measured[["predicted_ms", "measured_ms"]].rank().corr().iloc[0, 1]
    return (f"The table's predictions rank the {len(measured)} measured latencies with Spearman {rho:.2f} "
            "(measurements of trials that shared a machine are noisy).")


def _number(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column (params are logged as text), all-missing when no run logged it."""
    return pd.to_numeric(runs_column(frame, name), errors="coerce").astype(float)
