"""The end of a launch: the leaderboard of every trial and the commands that open the study."""

from __future__ import annotations

from typing import Any

import study_spec


def leaderboard(rows: list[dict[str, Any]], study: study_spec.Study):
    """Phases in order, trials sorted by the study's metric within each."""
    import pandas as pd

    table = pd.DataFrame(rows).drop(columns=["config"], errors="ignore")
    if table.empty:
        return table
    order = {phase.name: i for i, phase in enumerate(study.phases)}
    table["_phase"] = table["phase"].map(order)
    by = ["_phase"] + ([study.metric] if study.metric in table else [])
    table = table.sort_values(by, ascending=[True, study.mode == "min"][:len(by)], na_position="last")
    return table.drop(columns="_phase").reset_index(drop=True)


def print_summary(table, launch: dict[str, Any], study: study_spec.Study) -> None:
    import pandas as pd

    from analysis.links import dashboard_command, runs_table_url, ui_command

    shown = table.drop(columns=[c for c in ("error",) if c in table])
    for column, label in (("params_no_classifier", "params (M)"), ("macs", "MACs (M)")):
        if column in shown:
            shown[label] = shown.pop(column) / 1e6
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 60,
                           "display.float_format", "{:.4f}".format):
        print(f"\nleaderboard of {study.name} (launch {launch['launch']}, sorted by {study.metric} within each "
              f"phase; test metrics are compared, never optimised):")
        print(shown.to_string(index=False))
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
