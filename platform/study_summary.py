"""The end of a launch: the leaderboard of every trial and the commands that open the study."""

from __future__ import annotations

import math
from typing import Any

import study_spec


def leaderboard(rows: list[dict[str, Any]], study: study_spec.Study):
    """Phases in order; within each, the trials that ran every epoch first, then those a scheduler stopped
    early (their values are from fewer epochs, so they are not ranked among the others), each by the
    study's metric."""
    import pandas as pd

    table = pd.DataFrame(rows).drop(columns=["config"], errors="ignore")
    if table.empty:
        return table
    order = {phase.name: i for i, phase in enumerate(study.phases)}
    table["_phase"] = table["phase"].map(order)
    table["_stopped"] = table["status"] != "finished"
    by = ["_phase", "_stopped"] + ([study.metric] if study.metric in table else [])
    table = table.sort_values(by, ascending=[True, True, study.mode == "min"][:len(by)], na_position="last",
                              kind="stable")
    return table.drop(columns=["_phase", "_stopped"]).reset_index(drop=True)


def shown_table(table, metric: str):
    """The printed leaderboard: genotypes with their undecided slots marked (`?`) and the smallest decision
    margin, the study's metric with its 95 % interval and validation size, costs in millions."""
    from analysis.uncertainty import candidate

    shown = table.drop(columns=[c for c in ("error",) if c in table]).copy()
    if "decision" in shown:
        marked = shown.pop("decision").map(lambda text: text.split(" (")[0] if isinstance(text, str) else None)
        shown["genotype"] = marked.fillna(shown["genotype"])
    if "alpha/min_margin" in shown:
        shown.insert(shown.columns.get_loc("genotype") + 1, "margin", shown.pop("alpha/min_margin"))
    if metric in shown:
        items = [candidate("", row, metric) for row in table.to_dict("records")]
        at = shown.columns.get_loc(metric) + 1
        shown.insert(at, "95% CI", ["" if math.isnan(i["low"]) else f"{i['low']:.3f}-{i['high']:.3f}" for i in items])
        shown.insert(at + 1, "val n", ["" if math.isnan(i["ids"]) else f"{i['queries']:.0f}q/{i['ids']:.0f}id"
                                      for i in items])
    hidden = [c for c in shown if c.endswith(("_ci_low", "_ci_high")) or c.startswith("val/num_valid")
              or c == "alpha/decided_slots"]
    shown = shown.drop(columns=hidden)
    for column, label in (("params_no_classifier", "params (M)"), ("macs", "MACs (M)")):
        if column in shown:
            shown[label] = shown.pop(column) / 1e6
    return shown


def choice_lines(table, study: study_spec.Study) -> list[str]:
    """Per phase: which trial is best by the study's metric, with its interval and validation size, against
    the runner-up; `undecided` when their intervals overlap (trials stopped early are not candidates)."""
    from analysis.uncertainty import candidate, choice, choice_text

    lines = []
    for phase in dict.fromkeys(table["phase"]) if not table.empty else []:
        block = table[(table["phase"] == phase) & (table["status"] == "finished")]
        items = [candidate(str(row["trial"]), row, study.metric) for row in block.to_dict("records")]
        lines.append(f"{phase}: best {choice_text(choice(items, study.mode), study.metric)}")
    return lines


def print_summary(table, launch: dict[str, Any], study: study_spec.Study) -> None:
    import pandas as pd

    from analysis.links import dashboard_command, runs_table_url, ui_command
    from analysis.margins import THRESHOLD

    shown = shown_table(table, study.metric)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 60,
                           "display.float_format", "{:.4f}".format):
        print(f"\nleaderboard of {study.name} (launch {launch['launch']}, sorted by {study.metric} within each "
              f"phase, trials stopped early last; test metrics are compared, never optimised; `?` marks a genotype "
              f"slot whose decision margin is below {THRESHOLD:g}, `margin` the smallest):")
        print(shown.to_string(index=False))
    print(f"\n{study.metric}, 95 % bootstrap interval over the validation identities:")
    for line in choice_lines(table, study):
        print(f"  {line}")
    for row in table.to_dict("records"):
        if row.get("status") == "failed":
            print(f"failed: {row['trial']}: {row.get('error')}")
    uri = launch["tracking_uri"]
    print(f"\nMLflow: {uri}, experiment {study.name!r} (id {launch['experiment_id']}), parent run "
          f"{launch['parent_run_id']}")
    if uri.startswith(("http://", "https://")):
        print(f"open: {runs_table_url(uri.rstrip('/'), launch['experiment_id'])}")
    else:
        print(f"see it: {ui_command(uri)}")
        print(f"   then open {runs_table_url('http://127.0.0.1:5000', launch['experiment_id'])}")
    print(f"Optuna studies: {launch['optuna_storage']} (study names {study.name}-{launch['launch']}-PHASE)")
    print(f"see them: {dashboard_command(launch['optuna_storage'])}")
